"""DeepSeek-OCR v1 family on a tiny random checkpoint written in v1's own on-disk format."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from PIL import Image

from predictor.errors import InvalidRequest, LoadError
from predictor.families.base import ImageOptions, LoadSettings
from predictor.families.v1 import images as v1_images
from predictor.families.v1.config import is_v1_config, translate_v1_config
from predictor.families.v1.family import DeepseekOcrV1Family, expand_image_token
from predictor.testing.tiny_v1 import build_v1, v1_config_json

SETTINGS = LoadSettings(device="cpu", dtype=torch.float32, attn_implementation="sdpa", experts_implementation=None)
PROMPT = "<image>\nFree OCR."
PAGES = [(400, 300), (800, 1100), (2480, 3508), (3000, 800)]
# Gundam grids by hand (reference §1.4): small page untiled, portrait pages 2x3, the wide strip 4x1.
GUNDAM_TOKENS = {(400, 300): 273, (800, 1100): 903, (2480, 3508): 903, (3000, 800): 683}
NATIVE_TOKENS = {"tiny": 73, "small": 111, "base": 273, "large": 421}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    return build_v1(str(tmp_path_factory.mktemp("tiny-v1")))


@pytest.fixture(scope="module")
def family(tiny_dir) -> DeepseekOcrV1Family:
    fam = DeepseekOcrV1Family()
    fam.load(tiny_dir, SETTINGS)
    return fam


def _page(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, (240, 240, 240))
    image.paste((20, 20, 20), (size[0] // 8, size[1] // 8, size[0] // 2, size[1] // 4))
    return image


# ---- recognising checkpoints ------------------------------------------------------------------------------


def test_tiny_checkpoint_is_in_v1_format(tiny_dir):
    from safetensors import safe_open

    with open(os.path.join(tiny_dir, "config.json")) as f:
        config = json.load(f)
    assert config["model_type"] == "DeepseekOCR" and config["architectures"] == ["DeepseekOCRForCausalLM"]
    assert set(config["vision_config"]["width"]) == {"sam_vit_b", "clip-l-14-224"}
    with safe_open(os.path.join(tiny_dir, "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "model.view_seperator" in keys and "model.projector.layers.weight" in keys and "lm_head.weight" in keys
    assert any(k.startswith("model.sam_model.blocks.") for k in keys)
    assert any(k.endswith("self_attn.qkv_proj.weight") for k in keys)  # CLIP's fused qkv, as in v1
    assert any(".mlp.experts.0.gate_proj.weight" in k for k in keys)
    assert not any("vision_tower" in k or "language_model" in k for k in keys)


def test_matches_v1_but_not_ocr2():
    v1 = v1_config_json(512, {"<｜begin▁of▁sentence｜>": 0, "<｜end▁of▁sentence｜>": 1})
    assert DeepseekOcrV1Family.matches(v1)
    assert DeepseekOcrV1Family.matches({**v1, "model_type": "deepseek_vl_v2"})
    assert DeepseekOcrV1Family.matches({"model_type": "unlimited_ocr"})
    ocr2_original = {
        "model_type": "deepseek_vl_v2", "architectures": ["DeepseekOCR2ForCausalLM"], "language_config": {},
        "vision_config": {"width": {"sam_vit_b": {}, "qwen2-0-5b": {"dim": 896}}},
    }
    assert not is_v1_config(ocr2_original)
    assert not DeepseekOcrV1Family.matches({"model_type": "deepseek_ocr2"})
    assert not DeepseekOcrV1Family.matches({"model_type": "llama"})


def test_translation_uses_full_attention_and_real_defaults():
    v1 = v1_config_json(512, {"<｜begin▁of▁sentence｜>": 0, "<｜end▁of▁sentence｜>": 1})
    # A config without the tiny extras gets the real SAM-B / CLIP-L values.
    for entry in v1["vision_config"]["width"].values():
        for key in ("mlp_dim", "output_channels", "window_size", "intermediate_size"):
            entry.pop(key, None)
    v1["vision_config"]["width"]["sam_vit_b"]["downsample_channels"] = [512, 1024]
    v1["vision_config"]["width"]["clip-l-14-224"]["width"] = 1024
    v1["projector_config"]["input_dim"] = 2048
    config = translate_v1_config(v1, {"image_token_id": 3, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2})
    text, sam, clip = config.text_config, config.vision_config.sam_config, config.vision_config.encoder_config
    assert text.layer_types == ["full_attention"] * text.num_hidden_layers
    assert text.mlp_layer_types == ["dense", "sparse"]
    assert text.rope_parameters["rope_theta"] == 10000.0
    assert (sam.mlp_dim, sam.output_channels, sam.window_size, sam.image_size, sam.patch_size) == (3072, 256, 14,
                                                                                                   1024, 16)
    assert (clip.intermediate_size, clip.image_size, clip.patch_size) == (4096, 224, 14)
    assert config.image_token_id == 3 and text.pad_token_id == 2


def test_translation_rejects_inconsistent_widths():
    v1 = v1_config_json(512, {"<｜begin▁of▁sentence｜>": 0, "<｜end▁of▁sentence｜>": 1})
    v1["vision_config"]["width"]["clip-l-14-224"]["width"] = 96
    with pytest.raises(LoadError, match="CLIP width"):
        translate_v1_config(v1, {"image_token_id": 3})


# ---- loading ----------------------------------------------------------------------------------------------


def test_load_sets_model_and_tokenizer(family):
    assert family.model.training is False
    assert family.model.generation_config.disable_compile is True
    assert family.model.config.text_config.vocab_size == len(family.tokenizer)
    assert family.model.config.image_token_id == family.tokenizer.convert_tokens_to_ids("<image>")
    assert family.max_context == 8192


def _copy_with_tensors(tiny_dir: str, dest: str, edit) -> str:
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_dir, dest)
    tensors = load_file(os.path.join(dest, "model.safetensors"))
    edit(tensors)
    save_file(tensors, os.path.join(dest, "model.safetensors"), metadata={"format": "pt"})
    return dest


def test_missing_tensor_is_a_load_error(tiny_dir, tmp_path):
    path = _copy_with_tensors(tiny_dir, str(tmp_path / "missing"), lambda t: t.pop("model.projector.layers.weight"))
    with pytest.raises(LoadError, match=r"missing keys: .*multi_modal_projector\.weight"):
        DeepseekOcrV1Family().load(path, SETTINGS)


def test_renamed_tensor_is_a_load_error(tiny_dir, tmp_path):
    def rename(tensors):
        tensors["model.view_separator_typo"] = tensors.pop("model.view_seperator")

    path = _copy_with_tensors(tiny_dir, str(tmp_path / "renamed"), rename)
    with pytest.raises(LoadError) as info:
        DeepseekOcrV1Family().load(path, SETTINGS)
    assert "view_separator_typo" in str(info.value) and "missing keys: model.view_separator" in str(info.value)


def test_wrong_shape_is_a_load_error(tiny_dir, tmp_path):
    def reshape(tensors):
        tensors["model.image_newline"] = torch.zeros(3)

    path = _copy_with_tensors(tiny_dir, str(tmp_path / "shape"), reshape)
    with pytest.raises(LoadError, match="image_newline"):
        DeepseekOcrV1Family().load(path, SETTINGS)


# ---- requests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", PAGES)
@pytest.mark.parametrize("mode", DeepseekOcrV1Family.modes)
def test_prepare_and_forward_every_mode(family, mode, size):
    options = ImageOptions(mode=mode)
    prepared = family.prepare(_page(size), PROMPT, options)
    expected = GUNDAM_TOKENS[size] if mode == "gundam" else NATIVE_TOKENS[mode]
    text_tokens = len(family.tokenizer("\nFree OCR.", add_special_tokens=False)["input_ids"])
    assert prepared.image_tokens == expected == family.count_image_tokens(*size, options)
    assert prepared.prompt_tokens == 1 + expected + text_tokens  # BOS + placeholders + text
    ids = prepared.inputs["input_ids"]
    assert ids.shape == (1, prepared.prompt_tokens) and ids.dtype == torch.long
    assert ids[0, 0].item() == family.tokenizer.bos_token_id
    assert (ids == family.model.config.image_token_id).sum().item() == expected
    assert prepared.inputs["attention_mask"].shape == ids.shape
    assert prepared.image_size == size
    base = v1_images.MODES[mode].base_size
    assert prepared.inputs["pixel_values"].shape == (1, 3, base, base)
    tiled = mode == "gundam" and max(size) > 640
    assert ("pixel_values_local" in prepared.inputs) == tiled
    if tiled:
        cols, rows = prepared.inputs["patches_grid"][0]
        assert prepared.inputs["num_local_patches"] == [cols * rows]
        assert prepared.inputs["pixel_values_local"].shape == (cols * rows, 3, 640, 640)
    # The model checks that its visual features fill the placeholders exactly (it raises otherwise).
    with torch.no_grad():
        out = family.model(**prepared.inputs, use_cache=True, logits_to_keep=1)
    assert out.logits.shape == (1, 1, family.model.config.text_config.vocab_size)


def test_greedy_generation(family):
    prepared = family.prepare(_page((800, 1100)), PROMPT, ImageOptions())
    with torch.no_grad():
        out = family.model.generate(**prepared.inputs, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        again = family.model.generate(**prepared.inputs, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert out.shape == (1, prepared.prompt_tokens + 8)
    assert torch.equal(out, again)


def test_max_crops_option_changes_the_grid(family):
    size = (2000, 1000)
    assert family.count_image_tokens(*size, ImageOptions(max_crops=6)) == 483
    assert family.count_image_tokens(*size, ImageOptions(max_crops=9)) == 1093
    prepared = family.prepare(_page(size), PROMPT, ImageOptions(max_crops=9))
    assert prepared.inputs["patches_grid"] == [[4, 2]] and prepared.image_tokens == 1093


def test_exif_orientation_in_prepare(family):
    import io

    image = Image.new("RGB", (1100, 800), (200, 200, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    prepared = family.prepare(Image.open(buffer), PROMPT, ImageOptions())
    assert prepared.image_size == (800, 1100)
    assert prepared.inputs["patches_grid"] == [[2, 3]]  # portrait grid, not the 3x2 of the stored landscape


def test_bad_options_and_prompts(family):
    with pytest.raises(InvalidRequest) as info:
        family.image_options("dynamic", None)
    assert info.value.param == "mode"
    with pytest.raises(InvalidRequest) as info:
        family.image_options(None, 10)
    assert info.value.param == "max_crops"
    assert family.image_options(None, None) == ImageOptions("gundam", v1_images.DEFAULT_MAX_CROPS)
    with pytest.raises(InvalidRequest):
        expand_image_token("<image><image>\nFree OCR.", 3)
    assert expand_image_token("<image>\nx", 2) == "<image><image>\nx"
