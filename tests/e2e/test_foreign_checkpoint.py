"""A tiny DeepSeek-OCR-2 built by a tool that is not ours serves all protocols.

Our own builder (predictor/testing/tiny.py) and the server could share a mistake; a checkpoint written by an
independent builder catches that. Such a builder is not part of this repository, so the cross-check runs only when
FOREIGN_TINY_BUILDER names one: a Python file defining `build(out_dir) -> checkpoint_dir`.
"""

from __future__ import annotations

import base64
import importlib.util
import os
from pathlib import Path

import httpx
import pytest

from tests.conftest import png_bytes
from tests.e2e.server import served

BUILDER = os.environ.get("FOREIGN_TINY_BUILDER", "")


@pytest.fixture(scope="module")
def foreign_dir(tmp_path_factory) -> str:
    if not BUILDER:
        pytest.skip("cross-check with an independent tiny-checkpoint builder: set FOREIGN_TINY_BUILDER=<file.py>")
    assert Path(BUILDER).is_file(), f"FOREIGN_TINY_BUILDER={BUILDER} is not a file"
    spec = importlib.util.spec_from_file_location("foreign_tiny_builder", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(str(tmp_path_factory.mktemp("foreign")))


def test_foreign_tiny_checkpoint_serves_v1_v2_and_openai(foreign_dir, tmp_path):
    image = base64.b64encode(png_bytes()).decode()
    with served(foreign_dir, str(tmp_path / "server.log")) as srv:
        v1 = httpx.post(f"{srv.url}/v1/models/deepseek-ocr:predict", timeout=120,
                        json={"instances": [{"image": image, "max_tokens": 8, "min_tokens": 8}]})
        v2 = httpx.post(f"{srv.url}/v2/models/deepseek-ocr/infer", timeout=120, json={
            "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [image]}],
            "parameters": {"max_tokens": 8, "min_tokens": 8}})
        chat = httpx.post(f"{srv.url}/v1/chat/completions", timeout=120, json={
            "model": "deepseek-ocr", "max_tokens": 8, "min_tokens": 8, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}}]}]})
    assert v1.status_code == 200 and v2.status_code == 200 and chat.status_code == 200, (v1.text, v2.text, chat.text)
    assert v1.json()["predictions"][0]["usage"]["completion_tokens"] == 8
    text = next(o for o in v2.json()["outputs"] if o["name"] == "text")["data"][0]
    assert text == v1.json()["predictions"][0]["text"] == chat.json()["choices"][0]["message"]["content"]
