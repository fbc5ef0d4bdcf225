"""Full-size DeepSeek-OCR architectures with random weights, for GPU throughput runs without a download.

Sizes are the published ones (the config.json of deepseek-ai/DeepSeek-OCR on the hub for v1; transformers'
DeepSeek-OCR-2 config defaults with the 0.5B Qwen2 encoder for v2). The tokenizer is the tiny test one: its ids are
valid in the real vocabulary, and random weights make text quality meaningless anyway. Throughput depends on
shapes, not on weight values.
"""

from __future__ import annotations

from typing import Any

import torch

from predictor.families.base import special_token_ids
from predictor.families.fused import fuse_text_model
from predictor.testing.tokenizer import build_tokenizer

V1_LANGUAGE = {
    "vocab_size": 129280, "hidden_size": 1280, "intermediate_size": 6848, "num_hidden_layers": 12,
    "num_attention_heads": 10, "num_key_value_heads": 10, "moe_intermediate_size": 896, "n_routed_experts": 64,
    "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1, "moe_layer_freq": 1,
    "n_group": 1, "topk_group": 1, "topk_method": "greedy", "max_position_embeddings": 8192, "use_mla": False,
    "kv_lora_rank": None, "q_lora_rank": None, "qk_nope_head_dim": 0, "qk_rope_head_dim": 0, "v_head_dim": 0,
}
V1_CONFIG = {
    "model_type": "DeepseekOCR", "architectures": ["DeepseekOCRForCausalLM"], "language_config": V1_LANGUAGE,
    "vision_config": {"width": {
        "sam_vit_b": {"width": 768, "layers": 12, "heads": 12, "global_attn_indexes": [2, 5, 8, 11],
                      "downsample_channels": [512, 1024]},
        "clip-l-14-224": {"width": 1024, "layers": 24, "heads": 16, "image_size": 224, "patch_size": 14}}},
    "projector_config": {"input_dim": 2048, "n_embed": 1280, "projector_type": "linear"},
    **V1_LANGUAGE, "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
}


def _v2_model(token_ids: dict[str, Any]) -> Any:
    from transformers import DeepseekOcr2Config, DeepseekOcr2ForConditionalGeneration

    text = {k: V1_LANGUAGE[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                        "num_attention_heads", "num_key_value_heads", "moe_intermediate_size",
                                        "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
                                        "max_position_embeddings")}
    text.update(mlp_layer_types=["dense"] + ["sparse"] * 11, topk_method="greedy",
                bos_token_id=token_ids["bos_token_id"], eos_token_id=token_ids["eos_token_id"],
                pad_token_id=token_ids["pad_token_id"])
    encoder = {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
               "num_key_value_heads": 2, "rope_theta": 1000000.0}
    config = DeepseekOcr2Config(image_token_id=token_ids["image_token_id"], text_config=text,
                                vision_config={"encoder_config": encoder,
                                               "sam_config": {"downsample_channels": [512, 896]}})
    return DeepseekOcr2ForConditionalGeneration(config)


def full_size_family(which: str, device: str) -> tuple[Any, str]:
    """A family object holding a full-size random model in bfloat16 (float32 on CPU) on ``device``."""
    from transformers import DeepseekOcr2ImageProcessorPil, DeepseekOcr2Processor, UnlimitedOcrForConditionalGeneration

    from predictor.families.v1.config import translate_v1_config
    from predictor.families.v1.family import DeepseekOcrV1Family
    from predictor.families.v2 import DeepseekOcr2Family

    tokenizer = build_tokenizer()
    ids = special_token_ids(tokenizer)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        if which == "v1":
            family: Any = DeepseekOcrV1Family()
            model = UnlimitedOcrForConditionalGeneration(translate_v1_config(V1_CONFIG, ids))
        else:
            family = DeepseekOcr2Family()
            family.processor = DeepseekOcr2Processor(image_processor=DeepseekOcr2ImageProcessorPil(),
                                                     tokenizer=tokenizer)
            model = _v2_model(ids)
    family.model = model.to(dtype).eval()
    fuse_text_model(family.model)  # as ModelFamily.load does for a served checkpoint
    family.model.generation_config.disable_compile = True
    family.tokenizer = tokenizer
    return family, device
