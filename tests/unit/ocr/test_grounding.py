from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from predictor.ocr.grounding import Block, StreamCleaner, parse, render

EOS = "<｜end▁of▁sentence｜>"

MARKDOWN = (
    "<|ref|>title<|/ref|><|det|>[[330, 198, 558, 230]]<|/det|>\n# R&D QUALITY IMPROVEMENT\n\n"
    "<|ref|>text<|/ref|><|det|>[[100, 250, 900, 300], [100, 310, 600, 340]]<|/det|>\n"
    "Some **bold** text with a list:\n\n- item 1\n  - nested *item*\n\n"
    "<|ref|>table<|/ref|><|det|>[[50, 400, 950, 700]]<|/det|>\n"
    "<table><tr><td>a</td><td>b</td></tr><tr><td>1</td><td>2</td></tr></table>\n\n"
    "<|ref|>image<|/ref|><|det|>[[0, 720, 999, 999]]<|/det|>\n\n"
)
GROUNDING_OCR = (
    "<|ref|>Invoice 42<|/ref|><|det|>[[10, 10, 200, 40]]<|/det|>\n"
    "<|ref|>Total: 1,234.56 EUR<|/ref|><|det|>[[10, 900, 400, 950]]<|/det|>\n"
)
LOCATE_ECHO = "<|ref|>the logo<|/ref|> is not in the image."
MALFORMED = [
    "Intro <|ref|>title<|/ref|><|det|>[[1, 2, 3]]<|/det|>\n# Title",  # 3 numbers
    "<|ref|>x<|/ref|><|det|>[[a, b, c, d]]<|/det|> tail",  # not numbers
    "<|ref|>x<|/ref|><|det|>[]<|/det|> empty box list",
    "Body text <|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]",  # det never closed
    "Body <|ref|>title never closed",
    "Body <|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/ref|> wrong closing tag",
    "stray <|/det|> and <|det|> tags and a lone <| and <|grounding|>removed",
    "<|ref|>a<|ref|>b<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>after",
    "ends with a partial tag <|re",
    "ends with a lone <",
    "<|ref|><|/ref|><|det|>[[1,2,3,4]]<|/det|>empty label",
]
SAMPLES = [MARKDOWN, GROUNDING_OCR, LOCATE_ECHO, "", "   \n\n ", "Plain OCR text.\n\n\n\nNext paragraph.", *MALFORMED,
           MARKDOWN + MALFORMED[3], "<|grounding|>" + MARKDOWN + LOCATE_ECHO + MALFORMED[4]]


def test_markdown_blocks_and_clean_text() -> None:
    parsed = parse(MARKDOWN, 1998, 999)
    assert [b.label for b in parsed.blocks] == ["title", "text", "table", "image"]
    assert parsed.text == (
        "# R&D QUALITY IMPROVEMENT\n\nSome **bold** text with a list:\n\n- item 1\n  - nested *item*\n\n"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>1</td><td>2</td></tr></table>"
    )
    title, text, table, image = parsed.blocks
    assert title.text == "# R&D QUALITY IMPROVEMENT"
    assert title.boxes == [[330, 198, 558, 230]]
    assert title.boxes_px == [[660, 198, 1116, 230]]
    assert text.boxes == [[100, 250, 900, 300], [100, 310, 600, 340]]
    assert text.text.startswith("Some **bold**") and text.text.endswith("- nested *item*")
    assert table.text.startswith("<table><tr><td>a</td>")
    assert image.text == ""
    assert image.boxes_px == [[0, 720, 1998, 999]]


def test_block_to_dict() -> None:
    block = parse(GROUNDING_OCR, 999, 999).blocks[0]
    assert block.to_dict() == {"label": "Invoice 42", "text": "", "boxes": [[10, 10, 200, 40]],
                               "boxes_px": [[10, 10, 200, 40]]}


def test_grounding_ocr_labels_are_blocks() -> None:
    parsed = parse(GROUNDING_OCR, 500, 500)
    assert [b.label for b in parsed.blocks] == ["Invoice 42", "Total: 1,234.56 EUR"]
    assert parsed.text == ""


def test_ref_without_det_keeps_label_as_text() -> None:
    parsed = parse(LOCATE_ECHO, 100, 100)
    assert parsed.blocks == []
    assert parsed.text == "the logo is not in the image."


@pytest.mark.parametrize(
    ("coords", "boxes", "boxes_px"),
    [
        ("[[1200, -5, 500, 1000]]", [[500, 0, 999, 999]], [[250, 0, 500, 200]]),
        ("[[900, 800, 100, 200]]", [[100, 200, 900, 800]], [[50, 40, 450, 160]]),
        ("[[0,0,999,999]]", [[0, 0, 999, 999]], [[0, 0, 500, 200]]),
        ("[10.4, 20.6, 30, 40]", [[10, 21, 30, 40]], [[5, 4, 15, 8]]),
        ("[[1, 2, 3, 4],]", [[1, 2, 3, 4]], [[1, 0, 2, 1]]),
    ],
)
def test_coordinates_are_clipped_and_ordered(coords: str, boxes: list, boxes_px: list) -> None:
    parsed = parse(f"<|ref|>r<|/ref|><|det|>{coords}<|/det|>body", 500, 200)
    assert parsed.blocks == [Block(label="r", text="body", boxes=boxes, boxes_px=boxes_px)]
    assert parsed.text == "body"


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_never_raises_and_stays_in_text(raw: str) -> None:
    parsed = parse(raw, 640, 480)
    for block in parsed.blocks:
        assert all(0 <= v <= 999 for box in block.boxes for v in box)
    if "<|grounding|>" not in raw and "[[1, 2, 3, 4]]<|/det|>" not in raw and "[[1,2,3,4]]<|/det|>" not in raw:
        assert parsed.blocks == []
        assert parsed.text == raw.strip()


def test_malformed_details() -> None:
    assert parse(MALFORMED[6], 9, 9).text == "stray <|/det|> and <|det|> tags and a lone <| and removed"
    nested = parse(MALFORMED[7], 9, 9)
    assert nested.text == "<|ref|>aafter"
    assert [(b.label, b.text) for b in nested.blocks] == [("b", "after")]
    assert parse(MALFORMED[10], 9, 9).blocks[0].label == ""
    assert parse(MARKDOWN + MALFORMED[3], 9, 9).blocks[-1].text == "Body text <|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]"


def test_overlong_label_is_malformed() -> None:
    raw = "<|ref|>" + "x" * 2001 + "<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>"
    assert parse(raw, 9, 9).blocks == []
    ok = "<|ref|>" + "x" * 2000 + "<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>"
    assert len(parse(ok, 9, 9).blocks) == 1


def test_empty_and_plain_text() -> None:
    assert parse("", 10, 10).text == ""
    assert parse("  \n ", 10, 10).blocks == []
    assert parse("Plain OCR text.\n\n\n\nNext.", 10, 10).text == "Plain OCR text.\n\nNext."


def _stream(raw: str, cuts: list[int]) -> list[str]:
    cleaner, deltas = StreamCleaner(), []
    for cut in cuts:
        deltas.append(cleaner.feed(raw[:cut]))
    deltas.append(cleaner.finish(raw))
    return deltas


@pytest.mark.parametrize("raw", SAMPLES)
def test_stream_deltas_add_up_to_parsed_text(raw: str) -> None:
    expected = parse(raw, 100, 100).text
    assert "".join(_stream(raw, list(range(len(raw) + 1)))) == expected  # one character at a time
    rng = random.Random(len(raw))
    for _ in range(100):
        cuts = sorted(rng.sample(range(len(raw) + 1), k=min(len(raw) + 1, rng.randint(0, 8))))
        emitted = ""
        cleaner = StreamCleaner()
        for cut in cuts:
            emitted += cleaner.feed(raw[:cut])
            assert expected.startswith(emitted)  # never something that must be taken back later
        assert emitted + cleaner.finish(raw) == expected


def test_stream_holds_back_incomplete_groups_only() -> None:
    cleaner = StreamCleaner()
    assert cleaner.feed("Hello <|re") == "Hello"
    assert cleaner.feed("Hello <|ref|>title<|/ref|><|det|>[[1, 2") == ""
    assert cleaner.feed("Hello <|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nWorld") == " \nWorld"
    assert cleaner.finish("Hello <|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nWorld") == ""


def test_stream_releases_text_after_an_overlong_unclosed_ref() -> None:
    raw = "Start <|ref|>" + "y" * 2100
    assert StreamCleaner().feed(raw) == raw


def test_stream_finish_with_diverging_raw_does_not_duplicate() -> None:
    cleaner = StreamCleaner()
    assert cleaner.feed("abc") == "abc"
    assert cleaner.finish("abcdef") == "def"
    other = StreamCleaner()
    other.feed("abc")
    assert other.finish("xyz") == ""


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_render_draws_boxes() -> None:
    page = Image.new("RGB", (800, 600), "white")
    blocks = parse(MARKDOWN, 800, 600).blocks
    image = _decode(render(page, blocks))
    assert image.format == "PNG" and image.mode == "RGB" and image.size == (800, 600)
    table = blocks[2].boxes_px[0]
    inside = image.getpixel(((table[0] + table[2]) // 2, (table[1] + table[3]) // 2))
    assert inside != (255, 255, 255)
    assert image.getpixel((5, 300)) == (255, 255, 255)  # left margin: no box there
    # Distinct labels get distinct colours.
    title, text = blocks[0].boxes_px[0], blocks[1].boxes_px[0]
    assert image.getpixel(((title[0] + title[2]) // 2, title[3] - 1)) != image.getpixel(
        ((text[0] + text[2]) // 2, text[3] - 1))


def test_render_downscales_large_pages() -> None:
    page = Image.new("L", (5000, 2500), 255)
    image = _decode(render(page, parse(GROUNDING_OCR, 5000, 2500).blocks))
    assert image.size == (2000, 1000)
    assert image.mode == "RGB"
    assert image.getpixel((int(0.5 * 400), int(0.925 * 1000))) != (255, 255, 255)


def test_render_without_blocks_is_the_page() -> None:
    page = Image.new("RGB", (30, 20), (10, 20, 30))
    image = _decode(render(page, []))
    assert image.size == (30, 20) and image.getpixel((15, 10)) == (10, 20, 30)
