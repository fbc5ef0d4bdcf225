"""Translate a DeepSeek-OCR v1 ``config.json`` (remote-code layout) into transformers' native ``UnlimitedOcrConfig``.

transformers 5.24 has no DeepSeek-OCR v1 class, but ``unlimited_ocr`` is the same architecture and its
conversion mapping renames v1's tensor names exactly (reference/deepseek-ocr.md §2.3). Its config class does not
understand v1's ``vision_config.width`` dict, so the SAM and CLIP sub-configs are written here in native form.

v1 layout (deepseek-ai/DeepSeek-OCR ``config.json``): ``model_type: "DeepseekOCR"`` (some copies say
``deepseek_vl_v2``), ``architectures: ["DeepseekOCRForCausalLM"]``, ``language_config`` (DeepSeek-V2 MoE with MHA),
``vision_config.width`` = ``{"sam_vit_b": {width, layers, heads, global_attn_indexes, downsample_channels},
"clip-l-14-224": {width, layers, heads, image_size, patch_size}}``, ``projector_config`` (linear, 2048 -> 1280).
The sizes v1 does not state (SAM MLP/neck/window, CLIP MLP) are fixed in the remote code; a tiny test checkpoint
may state its own through the extra keys listed in ``SAM_EXTRA_KEYS`` / ``CLIP_EXTRA_KEYS``.
"""

from __future__ import annotations

from typing import Any

from predictor.errors import LoadError

V1_MODEL_TYPES = ("DeepseekOCR", "deepseek_vl_v2", "deepseekocr")
SAM_KEY = "sam_vit_b"
CLIP_KEY = "clip-l-14-224"
# Extra keys a v1-format config may carry in its width entries to state sizes the real checkpoint hard-codes.
SAM_EXTRA_KEYS = ("mlp_dim", "output_channels", "window_size", "image_size", "patch_size")
CLIP_EXTRA_KEYS = ("intermediate_size",)

# The real v1 values (remote code ``deepencoder.py`` build_sam_vit_b / build_clip_l; the same as the defaults of
# transformers' UnlimitedOcrSamVisionConfig / UnlimitedOcrVisionEncoderConfig).
SAM_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "global_attn_indexes": [2, 5, 8, 11],
    "window_size": 14, "output_channels": 256, "downsample_channels": [512, 1024], "mlp_dim": 3072,
    "image_size": 1024, "patch_size": 16,
}
CLIP_DEFAULTS: dict[str, Any] = {
    "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
    "image_size": 224, "patch_size": 14,
}
# Language-model fields copied from ``language_config`` (falling back to v1's duplicated top-level keys).
_TEXT_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "moe_intermediate_size", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
    "n_group", "topk_group", "topk_method", "routed_scaling_factor", "max_position_embeddings", "rms_norm_eps",
    "hidden_act", "attention_bias",
)


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


def deepseek_v2_text_config(config: dict[str, Any], token_ids: dict[str, int | None]) -> dict[str, Any]:
    """Native text-config fields for the DeepSeek-V2 MoE decoder of a remote-code config (v1 and OCR-2 share it).

    Fields come from ``language_config``, falling back to the duplicated top-level keys; ``token_ids`` (bos, eos,
    pad) override both. Refuses what the native MHA/softmax-router classes cannot run.
    """
    lang = config["language_config"]
    text = {key: lang.get(key, config.get(key)) for key in _TEXT_KEYS}
    text = {key: value for key, value in text.items() if value is not None}
    if lang.get("use_mla", config.get("use_mla", False)):
        raise LoadError("config sets use_mla=true; DeepSeek-OCR uses standard MHA and nothing else is supported")
    if lang.get("rope_scaling", config.get("rope_scaling")):
        raise LoadError("config sets rope_scaling; DeepSeek-OCR has plain RoPE and nothing else is supported")
    scoring = lang.get("scoring_func", config.get("scoring_func", "softmax"))
    if scoring != "softmax" or lang.get("norm_topk_prob", config.get("norm_topk_prob", False)):
        raise LoadError("config asks for a router other than softmax without top-k renormalisation")
    layers = int(text.get("num_hidden_layers", 12))
    first_dense = int(lang.get("first_k_dense_replace", config.get("first_k_dense_replace", 1)))
    freq = int(lang.get("moe_layer_freq", config.get("moe_layer_freq", 1)))
    # DeepSeek-V2's rule: layer i is MoE when i >= first_k_dense_replace and i % moe_layer_freq == 0.
    text["mlp_layer_types"] = ["sparse" if i >= first_dense and i % freq == 0 else "dense" for i in range(layers)]
    theta = lang.get("rope_theta", config.get("rope_theta", 10000.0))
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": float(theta)}
    text["tie_word_embeddings"] = bool(config.get("tie_word_embeddings", False))
    text.update({key: value for key, value in token_ids.items() if value is not None})
    return text


def _text_config(config: dict[str, Any], token_ids: dict[str, int | None]) -> dict[str, Any]:
    text = deepseek_v2_text_config(config, token_ids)
    layers = len(text["mlp_layer_types"])
    # v1 has plain causal attention; UnlimitedOcr defaults to a 128-token "reference sliding window" (R-SWA).
    # sliding_window must still be non-None (the config validator requires it); full_attention layers ignore it.
    text["layer_types"] = ["full_attention"] * layers
    text["sliding_window"] = int(text.get("max_position_embeddings", 8192))
    return text


def pick_fields(entry: dict[str, Any], renames: dict[str, str], extras: tuple[str, ...], defaults: dict[str, Any]):
    """Native sub-config: defaults, overridden by the v1 entry's known keys and the tiny-checkpoint extras."""
    out = dict(defaults)
    for v1_key, native_key in renames.items():
        if entry.get(v1_key) is not None:
            out[native_key] = entry[v1_key]
    for key in extras:
        if entry.get(key) is not None:
            out[key] = entry[key]
    return out


def _vision_config(config: dict[str, Any]) -> dict[str, Any]:
    vision = config.get("vision_config") or {}
    width = vision["width"]
    common = {"width": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads"}
    sam = pick_fields(
        width[SAM_KEY],
        {**common, "global_attn_indexes": "global_attn_indexes", "downsample_channels": "downsample_channels"},
        SAM_EXTRA_KEYS,
        {**SAM_DEFAULTS, "image_size": vision.get("image_size", SAM_DEFAULTS["image_size"])},
    )
    clip = pick_fields(
        width[CLIP_KEY], {**common, "image_size": "image_size", "patch_size": "patch_size"}, CLIP_EXTRA_KEYS,
        CLIP_DEFAULTS,
    )
    # CLIP takes SAM's last feature map as its patch embeddings, so the widths must agree.
    if clip["hidden_size"] != sam["downsample_channels"][-1]:
        raise LoadError(
            f"v1 vision_config: CLIP width {clip['hidden_size']} must equal SAM downsample_channels[-1] "
            f"{sam['downsample_channels'][-1]}"
        )
    return {"sam_config": sam, "encoder_config": clip}


def _check_projector(config: dict[str, Any], vision: dict[str, Any], text: dict[str, Any]) -> None:
    projector = config.get("projector_config") or {}
    if projector.get("projector_type", "linear") != "linear":
        raise LoadError(f"v1 projector_type {projector['projector_type']!r} is not supported (only 'linear')")
    expected_in = vision["sam_config"]["downsample_channels"][-1] + vision["encoder_config"]["hidden_size"]
    if projector.get("input_dim", expected_in) != expected_in:
        raise LoadError(f"v1 projector input_dim {projector['input_dim']} != SAM + CLIP width {expected_in}")
    if text.get("hidden_size") is not None and projector.get("n_embed", text["hidden_size"]) != text["hidden_size"]:
        raise LoadError(f"v1 projector n_embed {projector['n_embed']} != language hidden_size {text['hidden_size']}")


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
        _check_projector(config, vision, text)
        return UnlimitedOcrConfig(
            text_config=text,
            vision_config=vision,
            image_token_id=int(image_token_id),
            tie_word_embeddings=text["tie_word_embeddings"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LoadError(f"cannot translate the DeepSeek-OCR v1 config: {exc}") from exc
