"""DeepSeek-OCR-2 with transformers' native ``deepseek_ocr2`` classes.

Preprocessing always uses the PIL image processor: the CPU test environment cannot have torchvision, and GPU
images that do have it must preprocess exactly like the tests (reference/transformers.md, gotcha 1).
"""

from __future__ import annotations

import json
import os
from typing import Any

from PIL import Image

from predictor.errors import LoadError
from predictor.families.base import (
    ImageOptions,
    LoadSettings,
    ModelFamily,
    PreparedPrompt,
    raise_on_bad_keys,
    special_token_ids,
)

GLOBAL_SIZE = 1024
TILE_SIZE = 768
MIN_CROPS = 2
DEFAULT_MAX_CROPS = 6
_QUERIES_GLOBAL = 256  # (1024 / 16 / 4) ** 2
_QUERIES_TILE = 144  # (768 / 16 / 4) ** 2


class DeepseekOcr2Family(ModelFamily):
    name = "deepseek-ocr-2"
    # dynamic: the 1024 global view plus 0..max_crops tiles of 768 (DeepSeek's only mode);
    # global: the 1024 global view alone, fewer tokens for simple pages.
    modes = ("dynamic", "global")
    max_crops_limit = 6
    default_max_crops = DEFAULT_MAX_CROPS

    def __init__(self) -> None:
        self.processor: Any = None

    @classmethod
    def matches(cls, config: dict[str, Any]) -> bool:
        if config.get("model_type") == "deepseek_ocr2":
            return True
        from predictor.families.ocr2_original import is_original_ocr2_config

        return is_original_ocr2_config(config)

    def load(self, path: str, settings: LoadSettings) -> None:
        from transformers import AutoModelForImageTextToText

        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            raw_config = json.load(f)
        kwargs: dict[str, Any] = {"dtype": settings.dtype, "attn_implementation": settings.attn_implementation,
                                  # report wrong-shaped tensors by name below instead of a generic error
                                  "ignore_mismatched_sizes": True, "output_loading_info": True}
        if settings.experts_implementation:
            kwargs["experts_implementation"] = settings.experts_implementation
        try:
            self.processor = self._load_processor(path, raw_config)
            if raw_config.get("model_type") != "deepseek_ocr2":
                from predictor.families.ocr2_original import translate_original_ocr2_config

                token_ids = special_token_ids(self.processor.tokenizer)
                kwargs["config"] = translate_original_ocr2_config(raw_config, token_ids)
            model, info = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise LoadError(f"cannot load DeepSeek-OCR-2 from {path}: {exc}") from exc
        raise_on_bad_keys(info, path, self.name)
        self.model = model.to(settings.device).eval()
        self.model.generation_config.disable_compile = True
        self.tokenizer = self.processor.tokenizer

    @staticmethod
    def _load_processor(path: str, raw_config: dict[str, Any]) -> Any:
        from transformers import AutoProcessor, AutoTokenizer, DeepseekOcr2ImageProcessorPil, DeepseekOcr2Processor

        if raw_config.get("model_type") == "deepseek_ocr2":
            return AutoProcessor.from_pretrained(path, backend="pil")
        # The original layout ships only a tokenizer (and an older processor config for its remote code):
        # build the native processor with the real geometry around that tokenizer.
        tokenizer = AutoTokenizer.from_pretrained(path)
        return DeepseekOcr2Processor(image_processor=DeepseekOcr2ImageProcessorPil(), tokenizer=tokenizer)

    def _processor_kwargs(self, options: ImageOptions) -> dict[str, Any]:
        if (options.mode or self.default_mode) == "global":
            # crop_to_patches=False renders the global view at tile_size but counts tokens from size
            # (reference/transformers.md gotcha 2): set both to 1024 so view and count agree (257 tokens).
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
