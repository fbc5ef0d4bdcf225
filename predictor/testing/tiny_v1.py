"""A tiny random DeepSeek-OCR v1 checkpoint in v1's OWN on-disk format (remote-code config and tensor names).

The weights are built with transformers' native ``UnlimitedOcrForConditionalGeneration`` and written back with
v1's names through ``revert_weight_conversion`` (``model.sam_model.*``, ``model.vision_model.*`` with fused
``qkv_proj``, ``model.projector.layers.*``, ``model.view_seperator``, per-expert ``mlp.experts.K.*``,
``lm_head``), next to a v1-style ``config.json`` (``model_type: DeepseekOCR``, ``language_config``,
``vision_config.width``). Loading it therefore exercises the same translation and renaming as the real
deepseek-ai/DeepSeek-OCR checkpoint. Geometry is real (SAM 1024/16, CLIP 224/14, 640 tiles); widths and depths
are shrunk. Random weights: plumbing and token counts only.
"""

from __future__ import annotations

import json
import os
from typing import Any

from predictor.testing.tokenizer import BOS, EOS, IMAGE, PAD, build_tokenizer

# Shrunk sizes. CLIP width must equal SAM downsample_channels[-1] (CLIP consumes SAM's feature map).
_SAM = {
    "width": 32, "layers": 2, "heads": 2, "global_attn_indexes": [1], "downsample_channels": [32, 64],
    # Extra keys (see predictor.families.deepseek_config.SAM_EXTRA_KEYS): the real checkpoint hard-codes these.
    "mlp_dim": 64, "output_channels": 16, "window_size": 14, "image_size": 1024, "patch_size": 16,
}
_CLIP = {"width": 64, "layers": 2, "heads": 4, "image_size": 224, "patch_size": 14, "intermediate_size": 128}
_TEXT = {
    "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 4, "n_routed_experts": 8, "n_shared_experts": 2,
    "num_experts_per_tok": 2, "first_k_dense_replace": 1, "moe_layer_freq": 1, "n_group": 1, "topk_group": 1,
    "topk_method": "greedy", "max_position_embeddings": 8192, "use_mla": False, "kv_lora_rank": None,
    "q_lora_rank": None, "qk_nope_head_dim": 0, "qk_rope_head_dim": 0, "v_head_dim": 0,
}


def v1_config_json(vocab_size: int, ids: dict[str, int]) -> dict[str, Any]:
    """A v1 ``config.json`` shaped like deepseek-ai/DeepSeek-OCR's, with tiny sizes."""
    language = {
        **_TEXT, "vocab_size": vocab_size, "bos_token_id": ids[BOS], "eos_token_id": ids[EOS],
        "architectures": ["DeepseekV2ForCausalLM"], "lm_head": True, "rm_head": False, "torch_dtype": "float32",
    }
    return {
        "_name_or_path": "tiny-deepseek-ocr-v1",
        "architectures": ["DeepseekOCRForCausalLM"],
        "model_type": "DeepseekOCR",
        "language_config": language,
        "vision_config": {
            "image_size": 1024, "mlp_ratio": 3.7362, "model_name": "deeplip_b_l", "model_type": "vision",
            "width": {"clip-l-14-224": dict(_CLIP), "sam_vit_b": dict(_SAM)},
        },
        "projector_config": {
            "input_dim": _SAM["downsample_channels"][-1] + _CLIP["width"], "model_type": "mlp_projector",
            "n_embed": _TEXT["hidden_size"], "projector_type": "linear",
        },
        # v1 duplicates the language fields at the top level.
        **{k: v for k, v in language.items() if k not in ("architectures", "torch_dtype")},
        "candidate_resolutions": [[1024, 1024]], "global_view_pos": "head", "tile_tag": "2D",
        "rope_theta": 10000.0, "rope_scaling": None, "rms_norm_eps": 1e-6, "scoring_func": "softmax",
        "norm_topk_prob": False, "routed_scaling_factor": 1.0, "tie_word_embeddings": False,
        "torch_dtype": "float32", "transformers_version": "4.46.3", "use_cache": True,
    }


def build_v1(out_dir: str, seed: int = 0) -> str:
    """Write the tiny v1 checkpoint (config.json, model.safetensors, tokenizer) into ``out_dir``."""
    import torch
    from safetensors.torch import save_file
    from transformers import UnlimitedOcrForConditionalGeneration
    from transformers.core_model_loading import revert_weight_conversion

    from predictor.families.v1.config import translate_v1_config

    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (BOS, EOS, PAD, IMAGE)}
    config_json = v1_config_json(len(tokenizer), ids)
    # Build through the same translation the family uses, so the written tensors have exactly the shapes the
    # loader will expect.
    native = translate_v1_config(
        config_json,
        {"image_token_id": ids[IMAGE], "bos_token_id": ids[BOS], "eos_token_id": ids[EOS], "pad_token_id": ids[PAD]},
    )
    model = UnlimitedOcrForConditionalGeneration(native).eval()
    v1_state = revert_weight_conversion(model, model.state_dict())
    # Non-persistent buffers (CLIP position_ids) are not in the real checkpoint either.
    tensors = {k: v.detach().contiguous() for k, v in v1_state.items() if not k.endswith("position_ids")}
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config_json, f, indent=2)
    generation = {"bos_token_id": ids[BOS], "eos_token_id": ids[EOS], "pad_token_id": ids[PAD], "do_sample": False}
    with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump(generation, f, indent=2)
    tokenizer.save_pretrained(out_dir)
    return out_dir
