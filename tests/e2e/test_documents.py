"""Documents end to end with a checkpoint fitted to emit a DeepSeek-style markdown grounding page (title, inline
math, an image and its caption, an HTML table, an equation) for any image: figures cropped and linked, Markdown
options, page selection and DPI, captions, over OpenAI, KServe v1/v2 and the batch client."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import blank_pdf, png_bytes
from tests.e2e.client_helpers import pdf_bytes, run_client, summary_count
from tests.e2e.server import Server, served

MODEL = "deepseek-ocr"
LINK = re.compile(r"!\[\]\(([^)]+)\)")


@pytest.fixture(scope="module")
def fitted_server(fitted_grounding_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = str(tmp_path_factory.mktemp("logs") / "fitted-server.log")
    with served(fitted_grounding_dir, log, "--max_batch_size", "4", "--default_max_tokens", "400") as srv:
        yield srv


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _chat(url: str, data: bytes, mime: str, **options) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=300, json={
        "model": MODEL, **options, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{_b64(data)}"}}]}]})


def _check_figures(page: dict, page_index: int, text: str) -> None:
    """Every image block has its crop, of exactly its pixel box, named for its page, linked from the text."""
    image_blocks = [i for i, b in enumerate(page["blocks"]) if b["label"] == "image"]
    assert image_blocks and [f["block"] for f in page["figures"]] == image_blocks
    for number, figure in enumerate(page["figures"]):
        x1, y1, x2, y2 = page["blocks"][figure["block"]]["boxes_px"][figure["box"]]
        crop = Image.open(io.BytesIO(base64.b64decode(figure["data"])))
        assert crop.format == "JPEG" and crop.size == (x2 - x1, y2 - y1) == (figure["width"], figure["height"])
        assert figure["name"] == f"{page_index}_{number}.jpg"
        assert x2 <= page["width"] and y2 <= page["height"]
    links = [m for m in LINK.findall(text) if m.startswith(f"images/{page_index}_")]
    assert links == [f"images/{f['name']}" for f in page["figures"]]


def test_openai_pdf_figures_markdown_options_and_captions(fitted_server):
    r = _chat(fitted_server.url, pdf_bytes(2), "application/pdf", task="markdown",
              extra_body={"figures": True, "math": "dollar", "table_format": "markdown"})
    assert r.status_code == 200, r.text
    body = r.json()
    text = body["choices"][0]["message"]["content"]
    pages = body["ocr"]["pages"]
    assert [p["page"] for p in pages] == [1, 2] and [(p["width"], p["height"], p["dpi"]) for p in pages] == \
        [(600, 760, 144), (600, 760, 144)]
    for index, page in enumerate(pages):
        _check_figures(page, index, text)
        blocks = page["blocks"]
        caption = next(i for i, b in enumerate(blocks) if b["label"] == "image_caption")
        image = next(i for i, b in enumerate(blocks) if b["label"] == "image")
        table = next(i for i, b in enumerate(blocks) if b["label"] == "table")
        assert blocks[caption]["caption_of"] == image and blocks[image]["caption"] == caption
        assert blocks[table]["text"].startswith("| a | b |\n| --- | --- |\n| 1 | 2 |")
    assert "$E = mc^2$" in text and "$$x^2 + y^2 = 1$$" in text and "<|ref|>" not in text
    assert "![](images/0_0.jpg)\n\n<center>Figure 1" in text


def test_openai_stream_adds_up_and_brings_the_figures_on_its_last_chunk(fitted_server):
    frames = []
    with httpx.stream("POST", f"{fitted_server.url}/v1/chat/completions", timeout=300, json={
            "model": MODEL, "task": "markdown", "figures": True, "math": "dollar", "stream": True,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
                "url": "data:image/png;base64," + _b64(png_bytes((640, 480)))}}]}]}) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                frames.append(json.loads(line[6:]))
    text = "".join(f["choices"][0]["delta"].get("content") or "" for f in frames if f["choices"])
    last = next(f for f in frames if f["choices"] and f["choices"][0].get("finish_reason"))
    (page,) = last["ocr"]["pages"]
    _check_figures(page, 0, text)
    assert "$E = mc^2$" in text


def test_kserve_v1_selected_page_keeps_its_number_and_names_its_figure(fitted_server):
    r = httpx.post(f"{fitted_server.url}/v1/models/{MODEL}:predict", timeout=300, json={"instances": [
        {"image": _b64(blank_pdf(3)), "task": "markdown", "figures": True, "pages": "2", "dpi": 200}]})
    assert r.status_code == 200, r.text
    prediction = r.json()["predictions"][0]
    assert prediction["page"] == 2 and "pages" not in prediction
    assert (prediction["width"], prediction["height"], prediction["dpi"]) == (1700, 2200, 200)
    _check_figures(prediction, 1, prediction["text"])
    assert prediction["figures"][0]["name"] == "1_0.jpg" and "![](images/1_0.jpg)" in prediction["text"]


def test_kserve_v1_without_figures_keeps_a_placeholder(fitted_server):
    r = httpx.post(f"{fitted_server.url}/v1/models/{MODEL}:predict", timeout=300, json={"instances": [
        {"image": _b64(png_bytes()), "task": "markdown"}]})
    prediction = r.json()["predictions"][0]
    assert "[figure]\n\n<center>Figure 1" in prediction["text"] and "figures" not in prediction
    assert "\\( E = mc^2 \\)" in prediction["text"] and "<table>" in prediction["text"]
    assert prediction["raw_text"].startswith("<|ref|>title<|/ref|>")


def test_kserve_v2_rest_and_grpc_parameters(fitted_server):
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [_b64(blank_pdf(3))]}],
            "parameters": {"task": "markdown", "figures": True, "pages": "3"}}
    outputs = {o["name"]: o for o in httpx.post(f"{fitted_server.url}/v2/models/{MODEL}/infer", json=body,
                                                 timeout=300).json()["outputs"]}
    assert [p["page"] for p in json.loads(outputs["pages"]["data"][0])] == [3]
    figures = json.loads(outputs["figures"]["data"][0])["figures"]
    assert [(f["name"], f["page"]) for f in figures] == [("2_0.jpg", 3)]

    async def grpc(parameters: dict):
        client = InferenceGRPCClient(fitted_server.grpc_target)
        try:
            image = InferInput("image", [1], "BYTES")
            image.set_data_from_numpy(np.array([blank_pdf(3)], dtype=np.object_))
            return await client.infer(InferRequest(MODEL, infer_inputs=[image], parameters=parameters))
        finally:
            await client.close()

    for name, value in (("pages", "0"), ("pages", "3-1"), ("pages", "1-999"), ("dpi", 10), ("dpi", "high"),
                        ("table_format", "csv")):
        with pytest.raises(Exception) as info:
            asyncio.run(grpc({name: value, "max_tokens": 1}))
        assert "INVALID_ARGUMENT" in str(info.value) and name in str(info.value)


def test_client_writes_what_deepseeks_script_writes(fitted_server, tmp_path):
    (tmp_path / "in/sub").mkdir(parents=True)
    (tmp_path / "in/sub/a.pdf").write_bytes(pdf_bytes(2))
    (tmp_path / "in/sub/b.pdf").write_bytes(pdf_bytes(3))
    out = tmp_path / "out"
    args = ("--url", fitted_server.url, "--task", "markdown", "--render", "--raw", "--tables", "markdown",
            "-o", str(out), str(tmp_path / "in"))
    result = run_client(*args)
    assert result.returncode == 0, result.stderr
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == sorted(["sub/a.md", "sub/a.json", "sub/a.raw.md", "sub/a.layouts.pdf", "sub/a_images/0_0.jpg",
                            "sub/a_images/1_0.jpg", "sub/b.md", "sub/b.json", "sub/b.raw.md", "sub/b.layouts.pdf",
                            "sub/b_images/0_0.jpg", "sub/b_images/1_0.jpg", "sub/b_images/2_0.jpg"])
    _check_client_outputs(out / "sub", "a", 2)
    _check_client_outputs(out / "sub", "b", 3)
    again = run_client(*args)  # resume: everything is there, nothing is sent
    assert again.returncode == 0 and summary_count(again.stderr, "skipped") == 2
    (out / "sub/b_images/2_0.jpg").unlink()  # an output missing: b is redone, a is not
    redo = run_client(*args)
    assert summary_count(redo.stderr, "skipped") == 1 and (out / "sub/b_images/2_0.jpg").is_file()


def _check_client_outputs(folder, stem: str, pages: int) -> None:
    import pypdfium2 as pdfium

    markdown = (folder / f"{stem}.md").read_text()
    doc = json.loads((folder / f"{stem}.json").read_text())
    links = LINK.findall(markdown)
    assert links == [f"{stem}_images/{n}_0.jpg" for n in range(pages)]
    for link, page in zip(links, doc["pages"], strict=True):
        (figure,) = page["figures"]
        x1, y1, x2, y2 = page["blocks"][figure["block"]]["boxes_px"][0]
        assert figure["file"] == link and Image.open(folder / link).size == (x2 - x1, y2 - y1)
    assert "| a | b |" in markdown and (folder / f"{stem}.raw.md").read_text().count("<|ref|>image<|/ref|>") == pages
    assert len(pdfium.PdfDocument(str(folder / f"{stem}.layouts.pdf"))) == pages


def test_client_pages_and_dpi(fitted_server, tmp_path):
    (tmp_path / "doc.pdf").write_bytes(blank_pdf(3))
    out = tmp_path / "out"
    result = run_client("--url", fitted_server.url, "--protocol", "v1", "--task", "markdown", "--pages", "2",
                        "--dpi", "200", "--render", "-o", str(out), str(tmp_path / "doc.pdf"))
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "doc.json").read_text())
    (page,) = doc["pages"]
    assert page["page"] == 2 and page["figures"][0]["file"] == "doc_images/1_0.jpg"
    from predictor.ocr.figures import pixel_box

    image = page["blocks"][page["figures"][0]["block"]]
    assert pixel_box(image["boxes"][0], 1700, 2200) == image["boxes_px"][0]  # rendered here at 1700x2200
    x1, y1, x2, y2 = image["boxes_px"][0]
    assert Image.open(out / "doc_images/1_0.jpg").size == (x2 - x1, y2 - y1)
    assert LINK.findall((out / "doc.md").read_text()) == ["doc_images/1_0.jpg"]
    bad = run_client("--url", fitted_server.url, "--pages", "5", "-o", str(out / "x"), str(tmp_path / "doc.pdf"))
    assert bad.returncode == 1 and "--pages: page 5 is past the end" in bad.stderr
