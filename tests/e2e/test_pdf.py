"""PDF documents: pages rendered at 144 DPI, OCR'd together, joined with DeepSeek's page separator."""

from __future__ import annotations

import base64
import io

import httpx
from PIL import Image, ImageDraw

MODEL = "deepseek-ocr"
SEPARATOR = "\n\n<--- Page Split --->\n\n"


def pdf_bytes(pages: int) -> bytes:
    images = []
    for i in range(pages):
        image = Image.new("RGB", (300, 380), "white")  # 300x380 points -> 600x760 pixels at 144 DPI
        ImageDraw.Draw(image).text((20, 20), f"page {i + 1}", fill="black")
        images.append(image)
    buf = io.BytesIO()
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:])
    return buf.getvalue()


def test_v1_pdf_instance_and_raw_body(server):
    pdf = pdf_bytes(2)
    r = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", timeout=300, json={"instances": [
        {"image": base64.b64encode(pdf).decode(), "max_tokens": 5, "min_tokens": 5}]})
    assert r.status_code == 200, r.text
    prediction = r.json()["predictions"][0]
    assert len(prediction["pages"]) == 2
    assert prediction["text"] == SEPARATOR.join(p["text"] for p in prediction["pages"])
    # 600x760 pixels: no side above 768, so each page is the 1024 global view only (257 image tokens)
    assert [p["usage"]["image_tokens"] for p in prediction["pages"]] == [257, 257]
    assert prediction["usage"]["completion_tokens"] == 10
    raw = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", content=pdf_bytes(1), timeout=300,
                     headers={"Content-Type": "application/pdf"})
    assert raw.status_code == 200 and "pages" not in raw.json()["predictions"][0]


def test_openai_file_part_and_pdf_data_url(server):
    data_url = "data:application/pdf;base64," + base64.b64encode(pdf_bytes(2)).decode()
    for part in ({"type": "file", "file": {"file_data": data_url, "filename": "doc.pdf"}},
                 {"type": "image_url", "image_url": {"url": data_url}}):
        r = httpx.post(f"{server.url}/v1/chat/completions", timeout=300, json={
            "model": MODEL, "max_tokens": 4, "min_tokens": 4, "messages": [{"role": "user", "content": [part]}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["usage"]["completion_tokens"] == 8 and len(body["ocr"]["pages"]) == 2
        assert body["choices"][0]["message"]["content"].count("<--- Page Split --->") == 1


def test_bad_pdfs_are_400(server):
    broken = b"%PDF-1.4\n this is not really a pdf"
    r = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", timeout=60,
                   json={"instances": [{"image": base64.b64encode(broken).decode()}]})
    assert r.status_code == 400 and "instances[0].image" in r.json()["error"] and "PDF" in r.json()["error"]
    r = httpx.post(f"{server.url}/v1/chat/completions", timeout=60, json={
        "model": MODEL, "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f-1"}}]}]})
    assert r.status_code == 400 and "file_data" in r.json()["error"]["param"]
