"""What DeepSeek-OCR v1 and the original DeepSeek-OCR-2 hub configs share, translated to native config fields.

Both remote-code layouts describe the same DeepSeek-V2 MoE language model in ``language_config`` and the same SAM
ViT-B in ``vision_config.width["sam_vit_b"]``, and both end in a linear projector. The sizes the hub configs do
not state are fixed in DeepSeek's remote code; a tiny test checkpoint may state its own through extra keys.
"""

from __future__ import annotations

from typing import Any

from predictor.errors import LoadError

SAM_KEY = "sam_vit_b"
# Extra keys a remote-code config may carry in its width entries to state sizes the real checkpoint hard-codes.
SAM_EXTRA_KEYS = ("mlp_dim", "output_channels", "window_size", "image_size", "patch_size")
# The real SAM values (DeepSeek's ``build_sam_vit_b``; also transformers' UnlimitedOcrSamVisionConfig defaults).
SAM_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "global_attn_indexes": [2, 5, 8, 11],
    "window_size": 14, "output_channels": 256, "downsample_channels": [512, 1024], "mlp_dim": 3072,
    "image_size": 1024, "patch_size": 16,
}
SAM_RENAMES = {"width": "hidden_size", "layers": "num_hidden_layers", "heads": "num_attention_heads",
               "global_attn_indexes": "global_attn_indexes", "downsample_channels": "downsample_channels"}

# Language-model fields copied from ``language_config`` (falling back to v1's duplicated top-level keys).
_TEXT_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "moe_intermediate_size", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
    "n_group", "topk_group", "topk_method", "routed_scaling_factor", "max_position_embeddings", "rms_norm_eps",
    "hidden_act", "attention_bias",
)


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


def sam_config(config: dict[str, Any]) -> dict[str, Any]:
    """Native SAM sub-config from ``vision_config`` (its ``image_size`` is the config's own when stated)."""
    vision = config.get("vision_config") or {}
    defaults = {**SAM_DEFAULTS, "image_size": vision.get("image_size", SAM_DEFAULTS["image_size"])}
    return pick_fields(vision["width"][SAM_KEY], SAM_RENAMES, SAM_EXTRA_KEYS, defaults)


def check_projector(config: dict[str, Any], text: dict[str, Any], expected_in: int, what: str) -> None:
    """The linear projector must map the vision features (``expected_in`` wide, from ``what``) to the text width."""
    projector = config.get("projector_config") or {}
    if projector.get("projector_type", "linear") != "linear":
        raise LoadError(f"projector_type {projector['projector_type']!r} is not supported (only 'linear')")
    if projector.get("input_dim", expected_in) != expected_in:
        raise LoadError(f"projector input_dim {projector['input_dim']} != {what} {expected_in}")
    if text.get("hidden_size") is not None and projector.get("n_embed", text["hidden_size"]) != text["hidden_size"]:
        raise LoadError(f"projector n_embed {projector['n_embed']} != language hidden_size {text['hidden_size']}")
