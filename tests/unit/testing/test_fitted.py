"""The fitted checkpoints emit their chosen text through the real serving path (family, engine, service)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from predictor.ocr.options import OcrOptions
from predictor.ocr.runtime import Runtime
from predictor.testing.fitted import MARKER, TARGETS, build_fitted
from tests.conftest import page_image

# A white page (no tiles) and a noise image big enough for local tiles: a different image-token layout.
IMAGES = {
    "white": Image.new("RGB", (640, 480), "white"),
    "noise": Image.fromarray(np.random.default_rng(7).integers(0, 256, (1100, 1500, 3), dtype=np.uint8)),
}


def _runtime(model_dir: str) -> Runtime:
    from predictor.config import Settings
    from predictor.ocr.runtime import load_runtime

    return load_runtime(Settings(model_dir=model_dir, device="cpu", max_batch_size=2, default_max_tokens=1024))


def _ocr(runtime: Runtime, image: Image.Image, **options):
    return asyncio.run(runtime.service.run(image, OcrOptions(**options)))


@pytest.fixture(scope="module")
def grounding(fitted_grounding_dir: str):
    runtime = _runtime(fitted_grounding_dir)
    yield runtime
    runtime.engine.stop()


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_grounding_fit_emits_its_page_for_any_image(grounding, image):
    out = _ocr(grounding, IMAGES[image], task="markdown", raw=True)
    assert out.finish_reason == "stop"
    assert out.raw_text == TARGETS["grounding"]


def test_grounding_fit_holds_for_the_other_fitted_prompts_and_a_small_page(grounding):
    for task in ("ocr", "grounding"):
        out = _ocr(grounding, page_image(), task=task, raw=True)
        assert out.raw_text == TARGETS["grounding"], task


def test_grounding_output_parses_into_labelled_blocks(grounding):
    image = IMAGES["white"]
    out = _ocr(grounding, image, task="markdown")
    labels = [b["label"] for b in out.blocks]
    assert labels == ["title", "text", "image", "image_caption", "table", "equation"]
    by_label = {b["label"]: b for b in out.blocks}
    assert by_label["title"]["text"] == "# Fitted Page"
    assert by_label["image"]["text"] == ""
    assert by_label["image_caption"]["text"].startswith("<center>Figure 1 |")
    assert by_label["table"]["text"].startswith("<table><tr><td>")
    assert by_label["equation"]["text"].startswith("\\[")
    img_box, cap_box = by_label["image"]["boxes"][0], by_label["image_caption"]["boxes"][0]
    assert cap_box[1] >= img_box[3] and cap_box[0] < img_box[2] and cap_box[2] > img_box[0]
    assert by_label["title"]["boxes_px"] == [[round(112 * 640 / 999), round(64 * 480 / 999),
                                               round(887 * 640 / 999), round(118 * 480 / 999)]]
    assert "<|ref|>" not in out.text and out.text.startswith("# Fitted Page")


def test_build_fitted_returns_a_finished_fit_at_once(fitted_grounding_dir, tmp_path):
    with open(os.path.join(fitted_grounding_dir, MARKER), encoding="utf-8") as f:
        report = json.load(f)
    assert report["target"] == "grounding" and report["min_margin"] >= 3.0
    # A copy of a finished fit is recognised by its marker: no second fit.
    copy = tmp_path / "copy"
    shutil.copytree(fitted_grounding_dir, copy)
    mtime = os.path.getmtime(copy / "model.safetensors")
    assert build_fitted(str(copy), "grounding") == str(copy)
    assert os.path.getmtime(copy / "model.safetensors") == mtime
