"""Post-processing of recorded DeepSeek-style outputs: figure crops and links, placeholders, Markdown options,
captions, streaming that adds up to the final text."""

from __future__ import annotations

import base64
import io
import random
from dataclasses import dataclass

import pytest
from PIL import Image, ImageDraw

from predictor.ocr import figures, grounding
from predictor.ocr.postprocess import PageStream, finish_page
from tests.unit.ocr.recorded import (
    CAPTION_BLOCK,
    COLSPAN_TABLE,
    IMAGE_BLOCK,
    MALFORMED,
    NESTED_MATH,
    ODD_BOXES,
    PAGE,
    TABLE_BLOCK,
    TABLE_CAPTION_BLOCK,
)


@dataclass
class Opts:
    figures: bool = False
    math: str = "latex"
    table_format: str = "html"
    raw: bool = False
    labels_are_text: bool = False


def page(size=(1224, 1584)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle((200, 350, 1000, 800), fill=(200, 30, 30))
    return image


def test_figures_are_cropped_named_and_linked_where_the_group_stood():
    image = page()
    post = finish_page(PAGE, image, Opts(figures=True), page_index=2)
    assert [f["name"] for f in post.figures] == ["2_0.jpg"]
    (figure,) = post.figures
    assert figure["block"] == IMAGE_BLOCK and post.blocks[IMAGE_BLOCK]["label"] == "image"
    x1, y1, x2, y2 = post.blocks[IMAGE_BLOCK]["boxes_px"][0]
    crop = Image.open(io.BytesIO(base64.b64decode(figure["data"])))
    assert crop.format == "JPEG" and crop.size == (x2 - x1, y2 - y1) == (figure["width"], figure["height"])
    assert crop.getpixel((crop.width // 2, crop.height // 2))[0] > 150  # the red area of the page, not white
    text = post.text
    assert "of text to vision tokens.  \n\n![](images/2_0.jpg)\n\n<center>Figure 1" in text
    assert "<|" not in text and post.figures_skipped == []


def test_without_figures_a_visible_placeholder_stays_and_nothing_is_cropped():
    post = finish_page(PAGE, page(), Opts())
    assert "tokens.  \n\n[figure]\n\n<center>Figure 1" in post.text
    assert post.figures == [] and "images/" not in post.text


def test_colon_rewrites_always_and_math_and_tables_on_request():
    plain = finish_page(PAGE, page(), Opts())
    assert "\\(r := n_{t} / n_{v}\\)" in plain.text and "\\[ y =: f(x) \\]" in plain.text
    assert "<table><tr><td>Tokens</td>" in plain.text
    done = finish_page(PAGE, page(), Opts(math="dollar", table_format="markdown"))
    assert "$r := n_{t} / n_{v}$" in done.text and done.text.endswith("$$y =: f(x)$$")
    assert "| Tokens | Precision |\n| --- | --- |\n| 64 | 96.5% |" in done.text
    assert done.blocks[TABLE_BLOCK]["text"].startswith("| Tokens |") and "tables_kept_html" not in done.blocks[5]
    assert done.blocks[1]["text"].startswith("We define the ratio $r := ")


def test_a_table_with_colspan_stays_html_and_is_reported_on_its_block():
    post = finish_page(COLSPAN_TABLE, page(), Opts(table_format="markdown"))
    assert post.blocks[0]["tables_kept_html"] == ["rowspan/colspan"]
    assert post.blocks[0]["text"].startswith('<table><tr><td colspan="2">')
    assert post.blocks[1]["text"].startswith("| x | y |") and "tables_kept_html" not in post.blocks[1]
    assert '<td colspan="2">' in post.text and "| x | y |" in post.text


def test_nested_and_unclosed_math_delimiters():
    post = finish_page(NESTED_MATH, page(), Opts(math="dollar"))
    assert post.text == "Where $$x = \\text{if } \\( a \\( b \\) \\)$$ and $c$ but \\\\(d) and \\( open"


def test_captions_point_at_what_they_caption_and_back():
    blocks = finish_page(PAGE, page(), Opts()).blocks
    assert blocks[CAPTION_BLOCK]["caption_of"] == IMAGE_BLOCK and blocks[IMAGE_BLOCK]["caption"] == CAPTION_BLOCK
    assert blocks[TABLE_CAPTION_BLOCK]["caption_of"] == TABLE_BLOCK
    assert blocks[TABLE_BLOCK]["caption"] == TABLE_CAPTION_BLOCK
    assert "caption" not in blocks[0] and "caption_of" not in blocks[0]


def test_a_caption_beside_or_far_from_any_figure_captions_nothing():
    raw = ("<|ref|>image<|/ref|><|det|>[[0, 100, 400, 300]]<|/det|>\n"
           "<|ref|>image_caption<|/ref|><|det|>[[500, 310, 900, 330]]<|/det|>\nbeside, not below\n\n"
           "<|ref|>image_caption<|/ref|><|det|>[[0, 800, 400, 820]]<|/det|>\nfar below")
    blocks = finish_page(raw, page(), Opts()).blocks
    assert blocks[1]["caption_of"] is None and blocks[2]["caption_of"] is None and "caption" not in blocks[0]


def test_boxes_outside_the_scale_are_clamped_degenerate_ones_skipped_and_reported():
    image = page((1000, 800))
    post = finish_page(ODD_BOXES, image, Opts(figures=True))
    assert [f["name"] for f in post.figures] == ["0_0.jpg", "0_1.jpg", "0_2.jpg"]
    assert [(f["block"], f["box"]) for f in post.figures] == [(0, 0), (4, 0), (4, 1)]
    assert post.blocks[0]["boxes_px"][0] == [0, 80, 1000, 320]  # clamped to the page
    for f in post.figures:
        crop = Image.open(io.BytesIO(base64.b64decode(f["data"])))
        x1, y1, x2, y2 = post.blocks[f["block"]]["boxes_px"][f["box"]]
        assert crop.size == (x2 - x1, y2 - y1) and x2 <= image.width and y2 <= image.height
    assert post.figures_skipped == [{"block": 1, "box": 0, "reason": "zero area on the page"},
                                    {"block": 2, "box": 0, "reason": "inverted box"},
                                    {"block": 3, "box": 0, "reason": "zero area on the page"}]
    assert post.text == "![](images/0_0.jpg)\n\n![](images/0_1.jpg)\n![](images/0_2.jpg)\nafter"


def test_malformed_groups_stay_text_and_make_no_figure():
    post = finish_page(MALFORMED, page(), Opts(figures=True))
    assert post.figures == [] and post.blocks == []
    assert post.text.startswith("Intro <|ref|>image<|/ref|><|det|>[[1, 2, 3]]<|/det|>")


@pytest.mark.parametrize("opts", [Opts(), Opts(figures=True), Opts(math="dollar", table_format="markdown"),
                                  Opts(figures=True, math="dollar", table_format="markdown")])
@pytest.mark.parametrize("raw", [PAGE, COLSPAN_TABLE, ODD_BOXES, MALFORMED, NESTED_MATH])
def test_streamed_deltas_add_up_to_the_final_text(opts, raw):
    rng = random.Random(7)
    image = page()
    final = finish_page(raw, image, opts, page_index=1).text
    for _ in range(5):
        stream, out, at = PageStream(image, opts, page_index=1), "", 0
        while at < len(raw):
            at += rng.randint(1, 9)
            out += stream.feed(raw[:at])
        out += stream.finish(raw)
        assert out == final


def test_pixel_boxes_match_grounding_for_any_size():
    rng = random.Random(3)
    for _ in range(300):
        width, height = rng.randint(1, 3000), rng.randint(1, 3000)
        box = sorted(rng.randint(0, 999) for _ in range(2))
        box = [box[0], box[0], box[1], box[1]]
        raw = f"<|ref|>image<|/ref|><|det|>[{box}]<|/det|>"
        assert grounding.parse(raw, width, height).blocks[0].boxes_px[0] == figures.pixel_box(box, width, height)


def test_crops_past_the_response_budget_are_dropped_and_reported():
    @dataclass
    class Out:
        text: str
        raw_text: str = ""
        rendered_png: str | None = None
        figures: list | None = None
        figures_skipped: list | None = None

    pages = [Out("t" * 10, figures=[{"name": f"{p}_{i}.jpg", "block": i, "box": 0, "data": "x" * 40}
                                    for i in range(3)], figures_skipped=[]) for p in range(2)]
    figures.within_budget(pages, 10 * 2 + 40 * 4)
    assert [f["name"] for p in pages for f in p.figures] == ["0_0.jpg", "0_1.jpg", "0_2.jpg", "1_0.jpg"]
    assert [s["name"] for s in pages[1].figures_skipped] == ["1_1.jpg", "1_2.jpg"]
    assert "response size limit" in pages[1].figures_skipped[0]["reason"]
