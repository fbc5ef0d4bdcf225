"""The original deepseek-ai/DeepSeek-OCR-2 layout: config translation, and its tensor names loading through
transformers' deepseek_ocr2 conversion mapping (tiny random checkpoint written in that layout)."""

from __future__ import annotations

import json
import os

import pytest
import torch
from PIL import Image

from predictor.errors import LoadError
from predictor.families.v2.original import is_original_ocr2_config, translate_original_ocr2_config
from predictor.testing.tokenizer import BOS, EOS, IMAGE, PAD, build_tokenizer

# Shaped like the real config.json (model_type deepseek_vl_v2, DeepseekOCR2ForCausalLM, qwen2-0-5b entry),
# with tiny sizes; the extra keys in the width entries state what the remote code hard-codes.
LANGUAGE = {
    "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 4, "n_routed_experts": 8, "n_shared_experts": 2,
    "num_experts_per_tok": 2, "first_k_dense_replace": 1, "moe_layer_freq": 1, "n_group": 1, "topk_group": 1,
    "topk_method": "greedy", "max_position_embeddings": 8192, "use_mla": False, "bos_token_id": 0, "eos_token_id": 1,
}
SAM = {
    "width": 32, "layers": 2, "heads": 2, "global_attn_indexes": [1], "downsample_channels": [32, 64],
    "mlp_dim": 64, "output_channels": 16,
}
QWEN2 = {"dim": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate_size": 128}


def original_config(vocab_size: int) -> dict:
    return {
        "architectures": ["DeepseekOCR2ForCausalLM"],
        "model_type": "deepseek_vl_v2",
        "language_config": {**LANGUAGE, "vocab_size": vocab_size},
        "vision_config": {
            "image_size": 1024, "mlp_ratio": 3.7362, "model_name": "deepencoderv2", "model_type": "vision",
            "width": {"sam_vit_b": dict(SAM), "qwen2-0-5b": dict(QWEN2)},
        },
        "projector_config": {"input_dim": 64, "n_embed": 64, "projector_type": "linear", "model_type": "mlp_projector"},
        "candidate_resolutions": [[1024, 1024]], "tie_word_embeddings": False, "rope_theta": 10000.0,
        **{k: v for k, v in LANGUAGE.items()}, "vocab_size": vocab_size,
    }


REAL_LIKE = {  # the real checkpoint's config, abbreviated (sizes as published)
    "architectures": ["DeepseekOCR2ForCausalLM"], "model_type": "deepseek_vl_v2",
    "language_config": {
        "vocab_size": 129280, "hidden_size": 1280, "intermediate_size": 6848, "moe_intermediate_size": 896,
        "num_hidden_layers": 12, "num_attention_heads": 10, "num_key_value_heads": 10, "n_routed_experts": 64,
        "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1, "topk_method": "greedy",
        "bos_token_id": 0, "eos_token_id": 1, "max_position_embeddings": 8192, "use_mla": False,
    },
    "vision_config": {"image_size": 1024, "width": {
        "sam_vit_b": {"width": 768, "layers": 12, "heads": 12, "global_attn_indexes": [2, 5, 8, 11],
                      "downsample_channels": [512, 1024]},
        "qwen2-0-5b": {"dim": 896}}},
    "projector_config": {"input_dim": 896, "n_embed": 1280, "projector_type": "linear"},
}


def test_recognises_only_the_original_layout():
    assert is_original_ocr2_config(REAL_LIKE)
    assert is_original_ocr2_config(original_config(512))
    assert not is_original_ocr2_config({"model_type": "deepseek_ocr2"})
    v1_like = {**REAL_LIKE, "model_type": "DeepseekOCR", "architectures": ["DeepseekOCRForCausalLM"]}
    v1_like["vision_config"] = {"width": {"sam_vit_b": {}, "clip-l-14-224": {}}}
    assert not is_original_ocr2_config(v1_like)
    assert not is_original_ocr2_config({"model_type": "llama"})


REAL_TOKEN_IDS = {"image_token_id": 128815, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}


def test_real_config_translates_to_the_published_sizes():
    config = translate_original_ocr2_config(REAL_LIKE, REAL_TOKEN_IDS)
    assert config.model_type == "deepseek_ocr2" and config.image_token_id == 128815
    sam, encoder, text = config.vision_config.sam_config, config.vision_config.encoder_config, config.text_config
    assert (sam.hidden_size, sam.num_hidden_layers, sam.mlp_dim, sam.output_channels) == (768, 12, 3072, 256)
    assert sam.downsample_channels == [512, 896]  # last conv feeds the 896-wide Qwen2 encoder
    assert (encoder.hidden_size, encoder.num_hidden_layers, encoder.num_attention_heads,
            encoder.num_key_value_heads, encoder.intermediate_size) == (896, 24, 14, 2, 4864)
    assert encoder.rope_parameters["rope_theta"] == 1000000.0
    assert text.mlp_layer_types == ["dense"] + ["sparse"] * 11
    assert (text.hidden_size, text.n_routed_experts, text.num_experts_per_tok) == (1280, 64, 6)
    assert text.rope_parameters["rope_theta"] == 10000.0 and text.max_position_embeddings == 8192


def test_inconsistent_projector_is_a_load_error():
    bad = json.loads(json.dumps(REAL_LIKE))
    bad["projector_config"]["input_dim"] = 2048
    with pytest.raises(LoadError, match="input_dim"):
        translate_original_ocr2_config(bad, REAL_TOKEN_IDS)
    with pytest.raises(LoadError):
        translate_original_ocr2_config({"model_type": "deepseek_ocr2"}, REAL_TOKEN_IDS)


def test_image_token_id_comes_from_the_tokenizer_never_a_constant():
    with pytest.raises(LoadError, match="<image>"):
        translate_original_ocr2_config(REAL_LIKE, {**REAL_TOKEN_IDS, "image_token_id": None})
    assert translate_original_ocr2_config(REAL_LIKE, {**REAL_TOKEN_IDS, "image_token_id": 7}).image_token_id == 7


@pytest.fixture(scope="module")
def original_checkpoint(tmp_path_factory):
    """A tiny random model saved with the ORIGINAL tensor names (revert_weight_conversion) and config."""
    from safetensors.torch import save_file
    from transformers import DeepseekOcr2ForConditionalGeneration
    from transformers.core_model_loading import revert_weight_conversion

    out = str(tmp_path_factory.mktemp("ocr2-original"))
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (BOS, EOS, PAD, IMAGE)}
    raw = original_config(len(tokenizer))
    token_ids = {"image_token_id": ids[IMAGE], "bos_token_id": ids[BOS], "eos_token_id": ids[EOS],
                 "pad_token_id": ids[PAD]}
    model = DeepseekOcr2ForConditionalGeneration(translate_original_ocr2_config(raw, token_ids)).eval()
    original = revert_weight_conversion(model, model.state_dict())
    save_file({k: v.contiguous() for k, v in original.items()}, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(raw, f)
    tokenizer.save_pretrained(out)
    return out, model, tokenizer, token_ids, sorted(original)


def test_tiny_checkpoint_has_original_names(original_checkpoint):
    _, _, _, _, keys = original_checkpoint
    assert "model.qwen2_model.query_768.weight" in keys and "model.view_seperator" in keys
    assert any(k.startswith("model.qwen2_model.model.model.layers.0.") for k in keys)
    assert any(k.startswith("model.sam_model.blocks.0.") for k in keys)
    assert any(".mlp.experts.0.gate_proj.weight" in k for k in keys)
    assert not any("vision_tower" in k or "language_model" in k for k in keys)


def test_original_layout_loads_through_the_conversion_mapping(original_checkpoint):
    from transformers import DeepseekOcr2ForConditionalGeneration, DeepseekOcr2ImageProcessorPil, DeepseekOcr2Processor

    path, reference, tokenizer, token_ids, _ = original_checkpoint
    with open(os.path.join(path, "config.json")) as f:
        config = translate_original_ocr2_config(json.load(f), token_ids)
    model, info = DeepseekOcr2ForConditionalGeneration.from_pretrained(path, config=config, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    processor = DeepseekOcr2Processor(image_processor=DeepseekOcr2ImageProcessorPil(), tokenizer=tokenizer)
    inputs = processor(images=Image.new("RGB", (900, 600), (230, 230, 230)), text="<image>\nFree OCR.",
                       return_tensors="pt")
    with torch.no_grad():
        expected = reference(**inputs).logits
        actual = model.eval()(**inputs).logits
    assert torch.equal(expected, actual)


def test_family_serves_the_original_layout(original_checkpoint):
    """The v2 family detects the original layout, builds the native processor and runs a prefill."""
    from PIL import Image

    from predictor.families.base import ImageOptions, LoadSettings
    from predictor.families.v2 import DeepseekOcr2Family
    from predictor.ocr.runtime import detect_family

    path, _, tokenizer, _, _ = original_checkpoint
    assert detect_family(path) is DeepseekOcr2Family
    family = DeepseekOcr2Family()
    family.load(path, LoadSettings("cpu", torch.float32, "sdpa", None))
    prepared = family.prepare(Image.new("RGB", (900, 500), "white"), "<image>\nFree OCR.", ImageOptions())
    assert prepared.image_tokens == 256 + 144 * 2 + 1  # 2 tiles of 768 for a 900x500 page
    with torch.no_grad():
        out = family.model(**prepared.inputs, use_cache=True, logits_to_keep=1)
    assert out.logits.shape[-1] == family.model.config.text_config.vocab_size
    assert family.tokenizer.convert_tokens_to_ids("<image>") == family.model.config.image_token_id
