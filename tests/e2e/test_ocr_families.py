"""Both families served for real: per-request modes over KServe v1, v2 and OpenAI, token accounting by formula."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image
from transformers import AutoTokenizer

from tests.conftest import page_image
from tests.e2e.server import served

MODEL = "deepseek-ocr"
SIZES = [(400, 300), (800, 1100), (2480, 3508), (3000, 800)]
# Image placeholders per page, worked out by hand from the published layouts of DeepSeek-OCR and DeepSeek-OCR-2
# (github.com/deepseek-ai/DeepSeek-OCR and DeepSeek-OCR-2), not from our code:
# v1: n(n+1)+1 global (n = base/64) + rows*10*(cols*10+1) for Gundam tiles; grids 2x3 for the portrait pages,
# 4x1 for 3000x800. v2: 256 global + 144 per 768 tile + 1; 6 tiles (2x3) portrait, 4 (4x1) landscape.
V1_TOKENS = {
    "tiny": [73] * 4, "small": [111] * 4, "base": [273] * 4, "large": [421] * 4,
    "gundam": [273, 273 + 3 * 10 * 21, 273 + 3 * 10 * 21, 273 + 1 * 10 * 41],
}
V2_TOKENS = {"dynamic": [257, 257 + 6 * 144, 257 + 6 * 144, 257 + 4 * 144], "global": [257] * 4}
PROMPT = "Free OCR."


def _b64(size) -> str:
    buf = io.BytesIO()
    page_image(size, f"page {size[0]}x{size[1]}").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _text_tokens(model_dir: str) -> int:
    """BOS + the prompt's text after the image placeholders."""
    return len(AutoTokenizer.from_pretrained(model_dir)("\n" + PROMPT).input_ids)


def _three_protocols(url: str, image: str, mode: str) -> list[int]:
    v1 = httpx.post(f"{url}/v1/models/{MODEL}:predict", timeout=300,
                    json={"instances": [{"image": image, "mode": mode, "max_tokens": 1}]})
    v2 = httpx.post(f"{url}/v2/models/{MODEL}/infer", timeout=300, json={
        "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [image]}],
        "parameters": {"mode": mode, "max_tokens": 1}})
    chat = httpx.post(f"{url}/v1/chat/completions", timeout=300, json={
        "model": MODEL, "max_tokens": 1, "extra_body": {"mode": mode},
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
            "url": "data:image/png;base64," + image}}, {"type": "text", "text": PROMPT}]}]})
    for r in (v1, v2, chat):
        assert r.status_code == 200, r.text
    v2_usage = next(o for o in v2.json()["outputs"] if o["name"] == "usage")["data"]
    return [v1.json()["predictions"][0]["usage"]["prompt_tokens"], v2_usage[0], chat.json()["usage"]["prompt_tokens"]]


@pytest.fixture(scope="module")
def v1_server(tiny_v1_dir, tmp_path_factory):
    with served(tiny_v1_dir, str(tmp_path_factory.mktemp("v1") / "server.log")) as srv:
        yield srv


@pytest.mark.parametrize("mode", list(V1_TOKENS))
def test_v1_checkpoint_modes_count_tokens_by_formula(v1_server, tiny_v1_dir, mode):
    text = _text_tokens(tiny_v1_dir)
    for size, image_tokens in zip(SIZES, V1_TOKENS[mode], strict=True):
        assert _three_protocols(v1_server.url, _b64(size), mode) == [image_tokens + text] * 3, (size, mode)


@pytest.mark.parametrize("mode", list(V2_TOKENS))
def test_v2_checkpoint_modes_count_tokens_by_formula(server, tiny_v2_dir, mode):
    text = _text_tokens(tiny_v2_dir)
    for size, image_tokens in zip(SIZES, V2_TOKENS[mode], strict=True):
        assert _three_protocols(server.url, _b64(size), mode) == [image_tokens + text] * 3, (size, mode)


def test_option_outside_the_family_is_400_naming_accepted_values(v1_server):
    r = httpx.post(f"{v1_server.url}/v1/models/{MODEL}:predict", timeout=60,
                   json={"instances": [{"image": _b64((400, 300)), "mode": "dynamic"}]})
    assert r.status_code == 400
    assert "mode" in r.json()["error"] and "gundam" in r.json()["error"]
    r = httpx.post(f"{v1_server.url}/v1/chat/completions", timeout=60, json={
        "model": MODEL, "max_crops": 12, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + _b64((400, 300))}}]}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_crops"


def test_tasks_raw_and_render(v1_server):
    image = _b64((800, 600))
    body = {"instances": [{"image": image, "task": "markdown", "max_tokens": 6, "min_tokens": 6, "render": True,
                           "raw": True}]}
    r = httpx.post(f"{v1_server.url}/v1/models/{MODEL}:predict", json=body, timeout=300)
    assert r.status_code == 200, r.text
    prediction = r.json()["predictions"][0]
    picture = Image.open(io.BytesIO(base64.b64decode(prediction["rendered_png"])))
    assert picture.format == "PNG" and picture.size == (800, 600)
    assert isinstance(prediction["blocks"], list)
    r = httpx.post(f"{v1_server.url}/v1/models/{MODEL}:predict", timeout=60,
                   json={"instances": [{"image": image, "task": "locate"}]})
    assert r.status_code == 400 and "ref" in r.json()["error"]
    r = httpx.post(f"{v1_server.url}/v1/models/{MODEL}:predict", timeout=300,
                   json={"instances": [{"image": image, "task": "locate", "ref": "the title", "max_tokens": 2}]})
    assert r.status_code == 200
    # the prompt carries the ref: 1 BOS + tokens of "\nLocate <|ref|>the title<|/ref|> in the image." + image
    assert r.json()["predictions"][0]["usage"]["prompt_tokens"] > 273 + 5
