"""Translate the ORIGINAL deepseek-ai/DeepSeek-OCR-2 ``config.json`` (remote-code layout) into a native
``DeepseekOcr2Config`` (``model_type: deepseek_ocr2``).

transformers 5.24's conversion mapping for ``deepseek_ocr2`` already renames the original tensor names on load
(``model.sam_model.*``, ``model.qwen2_model.model.model.layers.*``, ``model.qwen2_model.query_768/1024``,
``model.projector.layers.*``, ``model.view_seperator``, per-expert MLPs merged into fused experts; see
``transformers/conversion_mapping.py``), but it needs a native config: ``from_pretrained`` cannot build the model
from the remote-code one.

Original layout (``DeepseekOCR2ForCausalLM``, ``model_type: deepseek_vl_v2``): ``language_config`` (the same
DeepSeek-V2 MoE decoder as v1), ``vision_config.width = {"sam_vit_b": {...}, "qwen2-0-5b": {"dim": 896}}``,
``projector_config`` (linear, 896 -> 1280). The Qwen2 encoder's other sizes are hard-coded in the remote code
(``deepencoderv2.py`` ``build_qwen2_decoder_as_encoder`` / ``CustomQwen2Decoder``: 24 layers, 14 heads, 2 KV heads,
MLP 4864, RMSNorm eps 1e-6, RoPE theta 1e6); a tiny test checkpoint may state its own in the same entry.
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

QWEN2_KEY = "qwen2-0-5b"
ORIGINAL_MODEL_TYPES = ("deepseek_vl_v2", "DeepseekOCR2", "deepseekocr2", "DeepseekOCR")
ORIGINAL_ARCHITECTURES = ("DeepseekOCR2ForCausalLM",)

ENCODER_DEFAULTS: dict[str, Any] = {
    "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "intermediate_size": 4864, "rms_norm_eps": 1e-6, "hidden_act": "silu", "vocab_size": 151936,
    # The remote code's Qwen2 encoder uses theta 1e6; the native config class defaults to 1e4.
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
}
# Keys a (tiny) original-layout config may add to its "qwen2-0-5b" entry, with their native names.
ENCODER_RENAMES = {
    "dim": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads", "intermediate_size": "intermediate_size",
}


def is_original_ocr2_config(cfg: dict[str, Any]) -> bool:
    """True for the remote-code DeepSeek-OCR-2 config: SAM plus a Qwen2 encoder entry and no CLIP entry."""
    if cfg.get("model_type") == "deepseek_ocr2" or not isinstance(cfg.get("language_config"), dict):
        return False
    width = (cfg.get("vision_config") or {}).get("width") or {}
    if not isinstance(width, dict) or SAM_KEY not in width or any(k.startswith("clip") for k in width):
        return False
    architectures = cfg.get("architectures") or []
    declared = cfg.get("model_type") in ORIGINAL_MODEL_TYPES or any(a in ORIGINAL_ARCHITECTURES for a in architectures)
    return declared and QWEN2_KEY in width


def _vision_config(cfg: dict[str, Any]) -> dict[str, Any]:
    width = (cfg.get("vision_config") or {})["width"]
    encoder = pick_fields(width.get(QWEN2_KEY) or {}, ENCODER_RENAMES, (), ENCODER_DEFAULTS)
    sam = sam_config(cfg)
    # The last SAM conv feeds the Qwen2 encoder, so it has the encoder's width (896 in the real model). Some copies
    # of the config repeat v1's [512, 1024] here, which the remote code never reads (it builds SAM with fixed
    # sizes), so the encoder width wins.
    sam["downsample_channels"] = [int(sam["downsample_channels"][0]), int(encoder["hidden_size"])]
    return {"sam_config": sam, "encoder_config": encoder}


def translate_original_ocr2_config(cfg: dict[str, Any], token_ids: dict[str, int | None]):
    """Native ``DeepseekOcr2Config`` for an original DeepSeek-OCR-2 config.

    ``token_ids`` holds ``image_token_id`` / ``bos_token_id`` / ``eos_token_id`` / ``pad_token_id`` read from the
    checkpoint's tokenizer: never a hard-coded id, which would silently misplace the image features of a
    checkpoint whose tokenizer differs.
    """
    from transformers import DeepseekOcr2Config

    if not is_original_ocr2_config(cfg):
        raise LoadError("not an original DeepSeek-OCR-2 config (expected language_config + vision_config.width "
                        f"with {SAM_KEY!r} and {QWEN2_KEY!r})")
    ids = dict(token_ids)
    image_token_id = ids.pop("image_token_id", None)
    if image_token_id is None:
        raise LoadError("the tokenizer has no <image> token")
    try:
        text = deepseek_v2_text_config(cfg, ids)
        vision = _vision_config(cfg)
        check_projector(cfg, text, vision["encoder_config"]["hidden_size"], "Qwen2 encoder width")
        return DeepseekOcr2Config(
            text_config=text,
            vision_config=vision,
            image_token_id=int(image_token_id),
            tie_word_embeddings=text["tie_word_embeddings"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LoadError(f"cannot translate the original DeepSeek-OCR-2 config: {exc}") from exc
