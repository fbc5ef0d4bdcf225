"""DeepSeek-OCR v1 served with transformers' native ``UnlimitedOcr*`` classes (never remote code).

The v1 remote code cannot import on transformers 5.x. ``unlimited_ocr`` is v1's architecture and its conversion
mapping renames v1's tensors on load, so a v1 checkpoint loads unchanged once its config is translated
(``config.py``). Preprocessing is DeepSeek's, in PIL/numpy (``images.py``), because transformers' UnlimitedOcr
image processor needs torchvision. docs/ARCHITECTURE.md has the reasons.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from predictor.constants import V1_MODES
from predictor.errors import InvalidRequest, LoadError
from predictor.families.base import ImageOptions, ModelFamily, PreparedPrompt, special_token_ids
from predictor.families.v1 import images as v1_images
from predictor.families.v1.config import is_v1_config, translate_v1_config

IMAGE_TOKEN = "<image>"


class DeepseekOcrV1Family(ModelFamily):
    """deepseek-ai/DeepSeek-OCR. Modes as in DeepSeek's README; Gundam (1024 global + 640 tiles) is the default."""

    name = "deepseek-ocr"
    display_name = "DeepSeek-OCR v1"
    modes = V1_MODES
    max_crops_limit = v1_images.MAX_CROPS_LIMIT
    default_max_crops = v1_images.DEFAULT_MAX_CROPS

    @classmethod
    def matches(cls, config: dict[str, Any]) -> bool:
        return is_v1_config(config)

    # ---- loading ------------------------------------------------------------------------------------------

    def _load_tokenizer(self, path: str, config: dict[str, Any]) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)

    def _model_class(self) -> Any:
        from transformers import UnlimitedOcrForConditionalGeneration

        return UnlimitedOcrForConditionalGeneration

    def _native_config(self, config: dict[str, Any]) -> Any:
        if config.get("model_type") == "unlimited_ocr":
            return None
        return translate_v1_config(config, special_token_ids(self.tokenizer))

    def _check_model(self, model: Any) -> None:
        vocab = int(model.config.text_config.vocab_size)
        if len(self.tokenizer) > vocab:
            raise LoadError(f"tokenizer has {len(self.tokenizer)} tokens but the text model's vocabulary is {vocab}")
        generation = model.generation_config
        generation.bos_token_id = self.tokenizer.bos_token_id
        generation.eos_token_id = self.tokenizer.eos_token_id
        generation.pad_token_id = self.tokenizer.pad_token_id

    # ---- requests -----------------------------------------------------------------------------------------

    def _resolve(self, options: ImageOptions) -> tuple[str, int]:
        # options come validated from the resolve step; unset values (direct callers) take the defaults
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
            # one forward takes global views of one size (one mode), all tiled or none
            group_key=(tuple(pixels.global_view.shape[1:]), pixels.tiles is not None),
        )


def expand_image_token(prompt: str, num_tokens: int) -> str:
    """Replace the single leading ``<image>`` with ``num_tokens`` copies (v1 supports one image per prompt)."""
    count = prompt.count(IMAGE_TOKEN)
    if count != 1:
        raise InvalidRequest(f"the prompt must contain exactly one {IMAGE_TOKEN} (found {count})", param="prompt")
    return prompt.replace(IMAGE_TOKEN, IMAGE_TOKEN * num_tokens, 1)


__all__ = ["DeepseekOcrV1Family", "expand_image_token"]
