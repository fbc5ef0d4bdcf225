"""The client's document outputs: figures renamed for their page and linked relative to the Markdown, the layout
PDF with one page per page, raw Markdown, and resume only when every output exists."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from predictor.client import figures, layouts, outputs
from predictor.client.cli import build_parser
from predictor.client.pages import PageImage
from predictor.client.protocol import PageResult, ProtocolError
from predictor.constants import PAGE_SEPARATOR


def _jpeg(size=(30, 20)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, "blue").save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode()


def _result() -> PageResult:
    text = "Intro\n\n![](images/0_0.jpg)\n\nmiddle\n\n![](images/0_1.jpg)"
    figs = [{"name": f"0_{i}.jpg", "block": i, "box": 0, "width": 30, "height": 20, "data": _jpeg()} for i in (0, 1)]
    return PageResult(text, "stop", {"completion_tokens": 3}, [], "raw <|ref|>image<|/ref|>", figs)


def test_figures_are_renamed_for_their_page_and_linked_beside_the_markdown():
    result = _result()
    files = figures.relocate(result, 4, "my doc_images")
    assert [name for name, _ in files] == ["4_0.jpg", "4_1.jpg"]
    assert Image.open(io.BytesIO(files[0][1])).size == (30, 20)
    assert result.text == "Intro\n\n![](my%20doc_images/4_0.jpg)\n\nmiddle\n\n![](my%20doc_images/4_1.jpg)"
    saved = result.to_dict()["figures"]
    assert [f["file"] for f in saved] == ["my doc_images/4_0.jpg", "my doc_images/4_1.jpg"]
    assert all("data" not in f for f in saved)


@pytest.mark.parametrize("figure", [{"name": "../../etc/passwd", "data": ""}, {"name": "0_0.jpg", "data": "!!"},
                                    "not a dict"])
def test_a_figure_that_is_not_one_fails_the_page(figure):
    result = PageResult("t", "stop", {}, figures=[figure])
    with pytest.raises(ProtocolError):
        figures.relocate(result, 0, "a_images")


def test_layout_pdf_has_one_page_per_page():
    import pypdfium2 as pdfium

    buf = io.BytesIO()
    Image.new("RGB", (300, 400), "white").save(buf, format="PNG")
    page = PageImage(buf.getvalue(), "image/png")
    blocks = [{"label": "image", "text": "", "boxes": [[100, 100, 500, 500]], "boxes_px": [[30, 40, 150, 200]]}]
    drawn = [layouts.layout_page(page, blocks) for _ in range(3)]
    pdf = pdfium.PdfDocument(layouts.layouts_pdf(drawn))
    assert len(pdf) == 3 and pdf[0].get_size() == (150.0, 200.0)
    pixel = pdf[0].render(scale=2).to_pil().getpixel((60, 80))  # inside the drawn box: tinted, not white
    assert pixel != (255, 255, 255)


def test_resume_needs_every_output(tmp_path):
    paths = outputs.output_paths(tmp_path, "sub/a")
    result = _result()
    files = figures.relocate(result, 0, paths.images.name)
    doc = outputs.document("sub/a.pdf", "pdf", [result], {}, [3])
    outputs.write_outputs(paths, doc, [result], raw=True, layouts=b"%PDF-")
    assert paths.raw.read_text() == "raw <|ref|>image<|/ref|>\n" and paths.layouts.read_bytes() == b"%PDF-"
    assert json.loads(paths.json.read_text())["pages"][0]["page"] == 3
    assert not outputs.is_complete(paths, render=False)  # the figures are not written yet
    for name, data in files:
        outputs.write_atomic(paths.images / name, data)
    assert outputs.is_complete(paths, render=False, raw=True, layouts=True)
    (paths.images / "0_1.jpg").unlink()
    assert not outputs.is_complete(paths, render=False)
    outputs.write_atomic(paths.images / "0_1.jpg", files[1][1])
    paths.layouts.unlink()
    assert outputs.is_complete(paths, render=False) and not outputs.is_complete(paths, render=False, layouts=True)
    assert "](a_images/0_0.jpg)" in paths.markdown.read_text() and PAGE_SEPARATOR not in paths.markdown.read_text()


@pytest.mark.parametrize("argv", [["--dpi", "10", "x"], ["--dpi", "high", "x"], ["--pages", "3-1", "x"],
                                  ["--pages", "0", "x"], ["--tables", "csv", "x"], ["--math", "tex", "x"]])
def test_bad_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "wanted"), [(["--task", "markdown"], True), (["--task", "ocr"], False), ([], False),
                                             (["--task", "markdown", "--no-figures"], False),
                                             (["--figures"], True)])
def test_figures_default_on_for_markdown(argv, wanted):
    from predictor.client.cli import figures_wanted

    assert figures_wanted(build_parser().parse_args([*argv, "x"])) is wanted
