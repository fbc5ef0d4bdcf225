"""DeepSeek-OCR v1 served with transformers' native ``UnlimitedOcr*`` classes (never remote code).

The v1 remote code cannot import on transformers 5.x (reference/deepseek-ocr.md §1.10). ``unlimited_ocr`` is v1's
architecture and its conversion mapping renames v1's tensors on load (§2.3), so a v1 checkpoint loads unchanged
once its config is translated (``v1_config``). Preprocessing is DeepSeek's, in PIL/numpy (``v1_images``), because
transformers' Unlimited image processor needs torchvision.
"""

from __future__ import annotations

import json
import os
from typing import Any

from PIL import Image

from predictor.errors import InvalidRequest, LoadError
from predictor.families import v1_images
from predictor.families.base import (
    ImageOptions,
    LoadSettings,
    ModelFamily,
    PreparedPrompt,
    raise_on_bad_keys,
    special_token_ids,
)
from predictor.families.v1_config import is_v1_config, translate_v1_config

IMAGE_TOKEN = "<image>"


class DeepseekOcrV1Family(ModelFamily):
    """deepseek-ai/DeepSeek-OCR. Modes as in DeepSeek's README; Gundam (1024 global + 640 tiles) is the default."""

    name = "deepseek-ocr"
    modes = ("gundam", "tiny", "small", "base", "large")
    max_crops_limit = v1_images.MAX_CROPS_LIMIT
    default_max_crops = v1_images.DEFAULT_MAX_CROPS

    @classmethod
    def matches(cls, config: dict[str, Any]) -> bool:
        return is_v1_config(config)

    # ---- loading ------------------------------------------------------------------------------------------

    def load(self, path: str, settings: LoadSettings) -> None:
        from transformers import AutoTokenizer, UnlimitedOcrForConditionalGeneration

        raw = _read_config(path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise LoadError(f"cannot load the tokenizer from {path}: {exc}") from exc
        kwargs: dict[str, Any] = {
            "dtype": settings.dtype,
            "attn_implementation": settings.attn_implementation,
            "output_loading_info": True,
            # Report shape mismatches in the loading info (checked below, naming each tensor) instead of a bare
            # "ignore_mismatched_sizes is False" error that names nothing.
            "ignore_mismatched_sizes": True,
        }
        if settings.experts_implementation:
            kwargs["experts_implementation"] = settings.experts_implementation
        if raw.get("model_type") != "unlimited_ocr":
            kwargs["config"] = translate_v1_config(raw, special_token_ids(tokenizer))
        try:
            model, info = UnlimitedOcrForConditionalGeneration.from_pretrained(path, **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            # Shape mismatches and unreadable files surface here; say which checkpoint and why.
            raise LoadError(f"cannot load DeepSeek-OCR v1 weights from {path}: {exc}") from exc
        raise_on_bad_keys(info, path, self.name)
        _check_vocab(model, tokenizer)
        model = model.to(settings.device).eval()
        generation = model.generation_config
        generation.bos_token_id = tokenizer.bos_token_id
        generation.eos_token_id = tokenizer.eos_token_id
        generation.pad_token_id = tokenizer.pad_token_id
        # No torch.compile on the serving path (DESIGN.md decision 4).
        generation.disable_compile = True
        self.model = model
        self.tokenizer = tokenizer

    # ---- requests -----------------------------------------------------------------------------------------

    def _resolve(self, options: ImageOptions) -> tuple[str, int]:
        options = self.check_options(options)
        return options.mode or self.default_mode, options.max_crops or self.default_max_crops

    def count_image_tokens(self, width: int, height: int, options: ImageOptions) -> int:
        mode, max_crops = self._resolve(options)
        return v1_images.count_image_tokens(width, height, mode, max_crops)

    def decode_mask(self, mask: Any) -> Any:
        # UnlimitedOcr builds a reference-sliding-window mask through vmap at every step even when every layer is
        # full attention (10 ms of Python per step, two thirds of a tiny CPU step); its text model accepts a
        # ready mapping instead.
        return {"full_attention": mask, "reference_sliding_attention": mask}

    def prepare(self, image: Image.Image, prompt: str, options: ImageOptions) -> PreparedPrompt:
        mode, max_crops = self._resolve(options)
        image = v1_images.orient(image)
        width, height = image.size
        num_tokens = v1_images.count_image_tokens(width, height, mode, max_crops)
        text = expand_image_token(prompt, num_tokens)
        encoded = self.tokenizer(text, return_tensors="pt", add_special_tokens=True)
        pixels = v1_images.preprocess(image, mode, max_crops)
        inputs: dict[str, Any] = {
            "input_ids": encoded["input_ids"].long(),
            "attention_mask": encoded["attention_mask"].long(),
            "pixel_values": pixels.global_view,
        }
        if pixels.tiles is not None:
            cols, rows = pixels.grid
            inputs["pixel_values_local"] = pixels.tiles
            # Python lists, as transformers' own processor returns them (skip_tensor_conversion): the model
            # splits the flat tile batch per image with them.
            inputs["num_local_patches"] = [cols * rows]
            inputs["patches_grid"] = [[cols, rows]]
        return PreparedPrompt(
            inputs=inputs,
            prompt_tokens=int(inputs["input_ids"].shape[1]),
            image_tokens=num_tokens,
            image_size=(width, height),
            extra={"mode": mode, "grid": pixels.grid if pixels.tiles is not None else None},
        )


def expand_image_token(prompt: str, num_tokens: int) -> str:
    """Replace the single leading ``<image>`` with ``num_tokens`` copies (v1 supports one image per prompt)."""
    count = prompt.count(IMAGE_TOKEN)
    if count != 1:
        raise InvalidRequest(f"the prompt must contain exactly one {IMAGE_TOKEN} (found {count})", param="prompt")
    return prompt.replace(IMAGE_TOKEN, IMAGE_TOKEN * num_tokens, 1)


def _read_config(path: str) -> dict[str, Any]:
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {path}/config.json: {exc}") from exc


def _check_vocab(model: Any, tokenizer: Any) -> None:
    vocab = int(model.config.text_config.vocab_size)
    if len(tokenizer) > vocab:
        raise LoadError(f"tokenizer has {len(tokenizer)} tokens but the text model's vocabulary is {vocab}")


__all__ = ["DeepseekOcrV1Family", "expand_image_token"]
