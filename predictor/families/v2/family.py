"""DeepSeek-OCR-2 with transformers' native ``deepseek_ocr2`` classes.

Preprocessing always uses the PIL image processor: a CPU-only install cannot have torchvision, and GPU images that
do have it must preprocess exactly like the tests (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from predictor.constants import V2_MODES
from predictor.families.base import ImageOptions, ModelFamily, PreparedPrompt, special_token_ids
from predictor.families.v2.original import is_original_ocr2_config, translate_original_ocr2_config

GLOBAL_SIZE = 1024
TILE_SIZE = 768
MIN_CROPS = 2
DEFAULT_MAX_CROPS = 6
_QUERIES_GLOBAL = 256  # (1024 / 16 / 4) ** 2
_QUERIES_TILE = 144  # (768 / 16 / 4) ** 2


class DeepseekOcr2Family(ModelFamily):
    name = "deepseek-ocr-2"
    display_name = "DeepSeek-OCR-2"
    # dynamic: the 1024 global view plus 0..max_crops tiles of 768 (DeepSeek's only mode);
    # global: the 1024 global view alone, fewer tokens for simple pages.
    modes = V2_MODES
    max_crops_limit = 6
    default_max_crops = DEFAULT_MAX_CROPS

    def __init__(self) -> None:
        self.processor: Any = None

    @classmethod
    def matches(cls, config: dict[str, Any]) -> bool:
        return config.get("model_type") == "deepseek_ocr2" or is_original_ocr2_config(config)

    def _load_tokenizer(self, path: str, config: dict[str, Any]) -> Any:
        from transformers import AutoProcessor, AutoTokenizer, DeepseekOcr2ImageProcessorPil, DeepseekOcr2Processor

        if config.get("model_type") == "deepseek_ocr2":
            self.processor = AutoProcessor.from_pretrained(path, backend="pil")
        else:
            # The original layout ships only a tokenizer (and an older processor config for its remote code):
            # build the native processor with the real geometry around that tokenizer.
            tokenizer = AutoTokenizer.from_pretrained(path)
            self.processor = DeepseekOcr2Processor(image_processor=DeepseekOcr2ImageProcessorPil(), tokenizer=tokenizer)
        return self.processor.tokenizer

    def _model_class(self) -> Any:
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText

    def _native_config(self, config: dict[str, Any]) -> Any:
        if config.get("model_type") == "deepseek_ocr2":
            return None
        return translate_original_ocr2_config(config, special_token_ids(self.tokenizer))

    def _processor_kwargs(self, options: ImageOptions) -> dict[str, Any]:
        if (options.mode or self.default_mode) == "global":
            # With crop_to_patches=False transformers' processor renders the global view at tile_size but counts
            # its tokens from size: set both to 1024 so view and count agree (257 tokens).
            side = {"height": GLOBAL_SIZE, "width": GLOBAL_SIZE}
            return {"crop_to_patches": False, "size": side, "tile_size": GLOBAL_SIZE}
        max_crops = options.max_crops or DEFAULT_MAX_CROPS
        return {"crop_to_patches": True, "min_patches": min(MIN_CROPS, max_crops), "max_patches": max_crops}

    def prepare(self, image: Image.Image, prompt: str, options: ImageOptions) -> PreparedPrompt:
        batch = self.processor(images=image, text=prompt, return_tensors="pt", **self._processor_kwargs(options))
        inputs = dict(batch)
        length = int(inputs["input_ids"].shape[1])
        return PreparedPrompt(
            inputs=inputs,
            prompt_tokens=length,
            image_tokens=self.count_image_tokens(image.width, image.height, options),
            image_size=(image.width, image.height),
            # one forward takes global views of one size, all tiled or none
            group_key=(tuple(inputs["pixel_values"].shape[1:]), "pixel_values_local" in inputs),
        )

    def count_image_tokens(self, width: int, height: int, options: ImageOptions) -> int:
        if (options.mode or self.default_mode) == "global":
            return _QUERIES_GLOBAL + 1
        return _QUERIES_GLOBAL + _QUERIES_TILE * self._num_crops(width, height, options) + 1

    @staticmethod
    def _num_crops(width: int, height: int, options: ImageOptions) -> int:
        from transformers.models.deepseek_ocr2.image_processing_pil_deepseek_ocr2 import get_optimal_tiled_canvas

        if max(width, height) <= TILE_SIZE:
            return 0
        max_crops = options.max_crops or DEFAULT_MAX_CROPS
        cols, rows = get_optimal_tiled_canvas((height, width), (TILE_SIZE, TILE_SIZE), min(MIN_CROPS, max_crops),
                                              max_crops)
        return cols * rows
