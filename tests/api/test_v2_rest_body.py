"""KServe v2 REST bodies: JSON whatever its Content-Type, and the binary tensor extension in and out.

The reproductions of issues 19 and 24: tritonclient's JSON body without a Content-Type was read as binary (400),
raw image bytes through the binary extension answered 500 with the image bytes in the error body, and a
non-numeric ``Inference-Header-Content-Length`` answered 500.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct

import httpx
import pytest

from tests.conftest import png_bytes

PNG = png_bytes()
B64 = base64.b64encode(PNG).decode()
MODEL = "deepseek-ocr"
URL = f"/v2/models/{MODEL}/infer"
HEADER = "Inference-Header-Content-Length"
GREEDY = {"max_tokens": 6, "min_tokens": 6}


@pytest.fixture()
def app(app_model):
    return app_model[0]


def _post(app, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app", timeout=120) as client:
            return await client.post(URL, content=body, headers=headers)

    return asyncio.run(run())


def _json_body(**parameters) -> bytes:
    return json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [B64]}],
                       "parameters": {**GREEDY, **parameters}}).encode()


def _binary_body(elements: list[bytes], *, size: int | None = None, **parameters) -> tuple[bytes, int]:
    raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    header = json.dumps({"inputs": [{"name": "image", "shape": [len(elements)], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw) if size is None else size}}],
                         "parameters": {**GREEDY, **parameters}}).encode()
    return header + raw, len(header)


def _text(response: httpx.Response) -> str:
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    return outputs["text"]["data"][0]


def _error(response: httpx.Response) -> str:
    error = response.json()["error"]  # KServe's shape: {"error": "message"}
    assert isinstance(error, str), error
    return error


def _reference(app) -> str:
    response = _post(app, _json_body(), {"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    return _text(response)


@pytest.mark.parametrize("content_type", [None, "application/octet-stream"])
def test_json_body_is_json_whatever_its_content_type(app, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = _post(app, _json_body(), headers)
    assert response.status_code == 200, response.text
    assert _text(response) == _reference(app)


def test_raw_image_bytes_through_the_binary_extension_are_an_image(app):
    body, length = _binary_body([PNG])
    response = _post(app, body, {"Content-Type": "application/octet-stream", HEADER: str(length)})
    assert response.status_code == 200, response.text[:300]
    assert _text(response) == _reference(app)


def test_binary_data_output_answers_in_the_binary_extension(app):
    body, length = _binary_body([PNG], binary_data_output=True)
    response = _post(app, body, {HEADER: str(length)})
    assert response.status_code == 200, response.text[:300]
    json_length = int(response.headers[HEADER])
    header = json.loads(response.content[:json_length])
    offset, texts = json_length, {}
    for output in header["outputs"]:
        assert "data" not in output, output
        size = output["parameters"]["binary_data_size"]
        texts[output["name"]] = response.content[offset:offset + size]
        offset += size
    assert offset == len(response.content)
    length_prefix = struct.unpack_from("<I", texts["text"])[0]
    assert texts["text"][4:4 + length_prefix].decode() == _reference(app)


def test_undecodable_raw_image_is_a_400_that_does_not_echo_its_bytes(app):
    """Issue 24's reproduction: one element of one byte, 0x89, used to answer 500 with the byte in the body."""
    body, length = _binary_body([b"\x89"])
    response = _post(app, body, {"Content-Type": "application/octet-stream", HEADER: str(length)})
    assert response.status_code == 400, response.text
    assert "image[0]" in response.text
    assert "x89" not in response.text and "\\u0089" not in response.text

    truncated = PNG[:200]  # a PNG cut short: its bytes must not come back
    body, length = _binary_body([truncated])
    response = _post(app, body, {"Content-Type": "application/octet-stream", HEADER: str(length)})
    assert response.status_code == 400, response.text
    assert "PNG" not in response.text and "IHDR" not in response.text


@pytest.mark.parametrize("value", ["abc", "-5", "99999", "1.5", ""])
def test_bad_header_length_is_a_400_naming_the_header(app, value):
    body, _ = _binary_body([PNG])
    response = _post(app, body, {HEADER: value})
    assert response.status_code == 400, response.text
    assert "inference-header-content-length" in _error(response).lower()


@pytest.mark.parametrize("size", [1_000_000_000, -1, "12"])
def test_binary_data_size_past_the_body_is_a_400_naming_it(app, size):
    body, length = _binary_body([PNG], size=size)
    response = _post(app, body, {HEADER: str(length)})
    assert response.status_code == 400, response.text
    assert "binary_data_size" in _error(response)


def test_bytes_left_over_after_the_binary_inputs_are_a_400(app):
    body, length = _binary_body([PNG])
    response = _post(app, body + b"\x00\x01", {HEADER: str(length)})
    assert response.status_code == 400, response.text
    assert "inference-header-content-length" in _error(response).lower()


def test_header_that_is_not_json_is_a_400_naming_the_body(app):
    response = _post(app, b"\x89PNG not json at all", {HEADER: "5"})
    assert response.status_code == 400, response.text
    assert "PNG" not in response.text


def test_body_that_is_neither_json_nor_binary_is_a_400(app):
    response = _post(app, PNG, {"Content-Type": "application/octet-stream"})
    assert response.status_code == 400, response.text
    assert "inference-header-content-length" in _error(response).lower()
    assert "IHDR" not in response.text
