"""Client mistakes found by probing the server as an attacker would: each is a 400 naming the field, never a
500, and the app serves a good request afterwards. (The soak suite runs a longer catalogue over every protocol.)"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.builders import b64, chat_body, data_url, image_part, png, text_part, v1_body, v2_body, v2_input

MODEL = "deepseek-ocr"


def _png(size: tuple[int, int]) -> str:
    return b64(png(size))


OK = _png((64, 64))


def _chat(prompt: str | None = None, image: str = OK, **extra) -> dict:
    parts = [image_part(data_url(image))] + ([] if prompt is None else [text_part(prompt)])
    return chat_body(*parts, **{"max_tokens": 2, **extra})


def _v1(image: str = OK, **fields) -> dict:
    return v1_body({"image": image, "max_tokens": 2, **fields})


def _v2(shape: list[int], data: list, **extra) -> dict:
    return {**v2_body(v2_input(data, shape)), **extra}


CHAT, V1, V2 = "/v1/chat/completions", f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"
NESTED = "[" * 10000 + "]" * 10000
CASES = [  # (name, path, body, param the error must name; None when the whole body is at fault)
    ("deeply nested JSON", CHAT, NESTED, None),
    ("lone surrogate in the prompt", CHAT, json.dumps(_chat("\ud800")), "prompt"),
    ("nested image placeholder in the prompt", CHAT, json.dumps(_chat("<<image>image>")), "prompt"),
    ("nested image placeholder (v1)", V1, json.dumps(_v1(prompt="<<image>image>")), "prompt"),
    ("50000x1 image", CHAT, json.dumps(_chat(image=_png((50000, 1)))), "image_url[0]"),
    ("1x5000 image (v1)", V1, json.dumps(_v1(image=_png((1, 5000)))), "instances[0].image"),
    ("100k-character stop string", CHAT, json.dumps(_chat(stop="x" * 100_000)), "stop"),
    ("five stop strings", CHAT, json.dumps(_chat(stop=["a", "b", "c", "d", "e"])), "stop"),
    ("v2 shape [3] with 1 element", V2, json.dumps(_v2([3], [OK])), "image"),
    ("v2 shape [1] with 2 elements", V2, json.dumps(_v2([1], [OK, OK])), "image"),
    ("v2 negative shape", V2, json.dumps(_v2([-1], [OK])), "image"),
]


@pytest.fixture()
def app(app_model):
    return app_model[0]


def _post(app, path: str, body: str) -> httpx.Response:
    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app", timeout=120) as client:
            return await client.post(path, content=body, headers={"Content-Type": "application/json"})

    return asyncio.run(run())


def _param(response: httpx.Response) -> str | None:
    error = response.json()["error"]
    return error["param"] if isinstance(error, dict) else None


@pytest.mark.parametrize(("name", "path", "body", "param"), CASES, ids=[c[0] for c in CASES])
def test_client_mistakes_are_400s_naming_the_field(app, name, path, body, param):
    r = _post(app, path, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    message = error["message"] if isinstance(error, dict) else error
    if param is not None:
        assert param in (_param(r) or "") or param in message, r.text
    assert "Error" not in message and "Traceback" not in message


def test_good_request_after_the_catalogue(app):
    assert _post(app, CHAT, json.dumps(_chat())).status_code == 200
