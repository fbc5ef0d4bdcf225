"""Translate a DeepSeek-OCR v1 ``config.json`` (remote-code layout) into transformers' native ``UnlimitedOcrConfig``.

transformers 5.24 has no DeepSeek-OCR v1 class, but ``unlimited_ocr`` is the same architecture and its
conversion mapping renames v1's tensor names on load (docs/ARCHITECTURE.md). Its config class does not
understand v1's ``vision_config.width`` dict, so the SAM and CLIP sub-configs are written here in native form.

v1 layout (deepseek-ai/DeepSeek-OCR ``config.json``): ``model_type: "DeepseekOCR"`` (some copies say
``deepseek_vl_v2``), ``architectures: ["DeepseekOCRForCausalLM"]``, ``language_config`` (DeepSeek-V2 MoE with MHA),
``vision_config.width`` = ``{"sam_vit_b": {width, layers, heads, global_attn_indexes, downsample_channels},
"clip-l-14-224": {width, layers, heads, image_size, patch_size}}``, ``projector_config`` (linear, 2048 -> 1280).
The sizes v1 does not state (SAM MLP/neck/window, CLIP MLP) are fixed in the remote code; a tiny test checkpoint
may state its own through the extra keys listed in ``deepseek_config.SAM_EXTRA_KEYS`` / ``CLIP_EXTRA_KEYS``.
"""

from __future__ import annotations

from typing import Any

from predictor.errors import LoadError
from predictor.families.deepseek_config import (
    SAM_KEY,
    check_projector,
    deepseek_v2_text_config,
    pick_fields,
    sam_config,
)

V1_MODEL_TYPES = ("DeepseekOCR", "deepseek_vl_v2", "deepseekocr")
CLIP_KEY = "clip-l-14-224"
# Extra keys a v1-format config may carry in its CLIP entry to state sizes the real checkpoint hard-codes.
CLIP_EXTRA_KEYS = ("intermediate_size",)

# The real CLIP values (DeepSeek's ``build_clip_l``; also transformers' UnlimitedOcrVisionEncoderConfig defaults).
CLIP_DEFAULTS: dict[str, Any] = {
    "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
    "image_size": 224, "patch_size": 14,
}


def is_v1_config(config: dict[str, Any]) -> bool:
    """True for DeepSeek-OCR v1's remote-code config, and for an already native ``unlimited_ocr`` config."""
    if config.get("model_type") == "unlimited_ocr":
        return True
    if config.get("model_type") not in V1_MODEL_TYPES or not isinstance(config.get("language_config"), dict):
        return False
    width = (config.get("vision_config") or {}).get("width") or {}
    # DeepSeek-OCR-2's original config shares model_type "deepseek_vl_v2" and sam_vit_b, but has a Qwen2 encoder
    # entry ("qwen2-0-5b") instead of CLIP.
    return isinstance(width, dict) and SAM_KEY in width and CLIP_KEY in width


def _text_config(config: dict[str, Any], token_ids: dict[str, int | None]) -> dict[str, Any]:
    text = deepseek_v2_text_config(config, token_ids)
    layers = len(text["mlp_layer_types"])
    # v1 has plain causal attention; UnlimitedOcr defaults to a 128-token "reference sliding window" (R-SWA).
    # sliding_window must still be non-None (the config validator requires it); full_attention layers ignore it.
    text["layer_types"] = ["full_attention"] * layers
    text["sliding_window"] = int(text.get("max_position_embeddings", 8192))
    return text


def _vision_config(config: dict[str, Any]) -> dict[str, Any]:
    width = (config.get("vision_config") or {})["width"]
    sam = sam_config(config)
    clip = pick_fields(
        width[CLIP_KEY], {"width": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads",
                          "image_size": "image_size", "patch_size": "patch_size"}, CLIP_EXTRA_KEYS, CLIP_DEFAULTS,
    )
    # CLIP takes SAM's last feature map as its patch embeddings, so the widths must agree.
    if clip["hidden_size"] != sam["downsample_channels"][-1]:
        raise LoadError(
            f"v1 vision_config: CLIP width {clip['hidden_size']} must equal SAM downsample_channels[-1] "
            f"{sam['downsample_channels'][-1]}"
        )
    return {"sam_config": sam, "encoder_config": clip}


def translate_v1_config(config: dict[str, Any], token_ids: dict[str, int | None]):
    """Native ``UnlimitedOcrConfig`` for a v1 ``config.json``.

    ``token_ids`` holds ``image_token_id`` and the text model's ``bos_token_id``/``eos_token_id``/``pad_token_id``,
    read from the checkpoint's tokenizer (never hard-coded: the real ids are 128815/0/1/2, a test tokenizer differs).
    """
    from transformers import UnlimitedOcrConfig

    if not is_v1_config(config) or config.get("model_type") == "unlimited_ocr":
        raise LoadError("not a DeepSeek-OCR v1 remote-code config (expected language_config + vision_config.width)")
    image_token_id = token_ids.get("image_token_id")
    if image_token_id is None:
        raise LoadError("the tokenizer has no <image> token")
    text_ids = {k: v for k, v in token_ids.items() if k != "image_token_id"}
    try:
        text = _text_config(config, text_ids)
        vision = _vision_config(config)
        sam_out = vision["sam_config"]["downsample_channels"][-1]
        check_projector(config, text, sam_out + vision["encoder_config"]["hidden_size"], "SAM + CLIP width")
        return UnlimitedOcrConfig(
            text_config=text,
            vision_config=vision,
            image_token_id=int(image_token_id),
            tie_word_embeddings=text["tie_word_embeddings"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LoadError(f"cannot translate the DeepSeek-OCR v1 config: {exc}") from exc
