"""The error body follows the route that answers, not the URL: ours answer OpenAI's shape under any prefix."""

from __future__ import annotations

import asyncio

import httpx
import pytest

MODEL = "deepseek-ocr"


@pytest.fixture()
def unloaded_app(tiny_v2_dir, monkeypatch):
    """An app whose model is not loaded yet: every inference route answers 503, cheaply."""
    from predictor.app import build_app
    from predictor.config import Settings

    monkeypatch.setenv("KSERVE_OPENAI_ROUTE_PREFIX", "/custom/prefix")
    return build_app(Settings(model_dir=tiny_v2_dir, device="cpu", max_body_bytes=1000))


def _call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(run())


def test_openai_body_under_a_custom_route_prefix(unloaded_app):
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    r = _call(unloaded_app, "POST", "/custom/prefix/v1/chat/completions", json=chat)
    assert r.status_code == 503 and r.headers["retry-after"]
    assert r.json()["error"]["code"] == "model_not_ready"
    # the body limit refuses before routing, and still answers in the shape of the route
    r = _call(unloaded_app, "POST", "/custom/prefix/v1/chat/completions", content=b"x" * 5000,
              headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert _call(unloaded_app, "POST", "/openai/v1/chat/completions", json=chat).status_code == 404


def test_kserve_routes_keep_kserve_body(unloaded_app):
    r = _call(unloaded_app, "POST", f"/v1/models/{MODEL}:predict", json={"instances": [{"image": "x"}]})
    assert r.status_code == 503 and isinstance(r.json()["error"], str)
    r = _call(unloaded_app, "POST", f"/v1/models/{MODEL}:predict", content=b"x" * 5000,
              headers={"Content-Type": "image/png"})
    assert r.status_code == 413 and isinstance(r.json()["error"], str)


def test_shared_v1_model_route_is_ours(unloaded_app):
    """GET /v1/models/{name} is our route (it answers OpenAI and KServe v1 clients alike): OpenAI error body."""
    r = _call(unloaded_app, "GET", "/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert _call(unloaded_app, "GET", f"/v1/models/{MODEL}").status_code == 503
