"""The fitted checkpoints emit their chosen text through the real serving path (family, engine, service)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from predictor.engine.ngram import table_token_ids
from predictor.ocr.options import OcrOptions
from predictor.ocr.runtime import Runtime
from predictor.testing.fitted import MARKER, TARGETS, build_fitted
from tests.conftest import page_image
from tests.ngram_oracle import NGramGuard

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


LOOP_HEADER, LOOP_LINE = "# Minutes\n\n", "- The quick brown fox jumps over the lazy dog.\n"


@pytest.fixture(scope="module")
def loop(fitted_loop_dir: str):
    runtime = _runtime(fitted_loop_dir)
    yield runtime
    runtime.engine.stop()


def test_loop_target_is_a_header_and_one_repeated_line():
    assert TARGETS["loop"] == LOOP_HEADER + LOOP_LINE * 21


def test_loop_fit_repeats_past_its_training_until_the_token_cap(loop):
    """Trained on 282 tokens without EOS; with the guard off it keeps looping to max_tokens."""
    out = _ocr(loop, IMAGES["noise"], task="markdown", raw=True, ngram_size=0, max_tokens=400)
    assert out.finish_reason == "length" and out.completion_tokens == 400
    assert (LOOP_HEADER + LOOP_LINE * 40).startswith(out.raw_text)
    assert out.raw_text.count(LOOP_LINE) > 12


def test_the_default_ngram_guard_breaks_the_loop_where_the_rule_says(loop):
    """The default guard (30-grams in a 90-token window) bans the loop's next token as soon as a 30-gram would
    repeat (the oracle finds where); greedy decoding then takes another token there ..."""
    tokenizer = loop.family.tokenizer
    target_ids = tokenizer(TARGETS["loop"], add_special_tokens=False)["input_ids"]
    guard = NGramGuard(30, 90, table_token_ids(tokenizer))
    first = next(i for i in range(len(target_ids)) if target_ids[i] in guard.banned(target_ids[:i]))
    # The period (13 tokens) starts at the header's last newline (index 8): the 29 tokens from there come back
    # 13 tokens later, so the 30th of that repeat (index 8 + 13 + 29) is banned.
    assert first == 8 + 13 + 29
    guarded = _ocr(loop, IMAGES["white"], task="markdown", raw=True, max_tokens=300)
    assert guarded.raw_text.startswith(tokenizer.decode(target_ids[:first]))
    assert not guarded.raw_text.startswith(tokenizer.decode(target_ids[:first + 1]))
    # ... but it does not end the loop: the model falls back into the line, which the guard keeps nicking.
    assert guarded.finish_reason == "length" and guarded.completion_tokens == 300
    assert guarded.raw_text.count(LOOP_LINE) >= 10


@pytest.fixture(scope="module")
def normal(fitted_normal_dir: str):
    runtime = _runtime(fitted_normal_dir)
    yield runtime
    runtime.engine.stop()


@pytest.mark.parametrize("guard", [(30, 90), (20, 50)], ids=["image-guard", "pdf-guard"])
def test_normal_dense_page_ends_with_eos_under_the_guards(normal, guard):
    out = _ocr(normal, IMAGES["white"], task="markdown", raw=True, ngram_size=guard[0], ngram_window=guard[1])
    assert out.finish_reason == "stop"
    assert out.raw_text == TARGETS["normal"]
    assert out.raw_text.count("<tr>") == 13
