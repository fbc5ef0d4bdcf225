"""The app in-process: protocols share one engine, errors map in one place, backpressure answers 429."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from tests.builders import chat_body, data_url, image_part
from tests.conftest import png_bytes

B64 = base64.b64encode(png_bytes()).decode()
MODEL = "deepseek-ocr"


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app", timeout=120)


def _chat(**extra) -> dict:
    return chat_body(image_part(data_url(B64)), **extra)


@pytest.fixture()
def app(app_model):
    return app_model[0]


def test_v1_and_openai_agree_on_greedy_text(app):
    async def run():
        async with _client(app) as client:
            v1 = await client.post(f"/v1/models/{MODEL}:predict",
                                   json={"instances": [{"image": B64, "max_tokens": 10, "min_tokens": 10}]})
            chat = await client.post("/v1/chat/completions", json=_chat(max_tokens=10, min_tokens=10))
            return v1, chat

    v1, chat = asyncio.run(run())
    assert v1.status_code == 200 and chat.status_code == 200, (v1.text, chat.text)
    assert v1.json()["predictions"][0]["text"] == chat.json()["choices"][0]["message"]["content"]
    assert chat.json()["ocr"]["pages"][0]["image_tokens"] == 257


def test_queue_full_gets_429_with_retry_after(app):
    """Capacity is one request (batch 1, queue 0): a second concurrent request is refused, then served."""

    async def run():
        async with _client(app) as client:
            long = asyncio.create_task(client.post("/v1/chat/completions",
                                                   json=_chat(max_tokens=300, min_tokens=300, ngram_size=0)))
            while app.state.model.runtime.engine.in_flight < 1:  # the long request holds the only slot
                await asyncio.sleep(0.01)
            refused = await client.post("/v1/chat/completions", json=_chat(max_tokens=2))
            refused_v1 = await client.post(f"/v1/models/{MODEL}:predict", json={"instances": [{"image": B64}]})
            first = await long
            after = await client.post("/v1/chat/completions", json=_chat(max_tokens=2))
            return refused, refused_v1, first, after

    refused, refused_v1, first, after = asyncio.run(run())
    assert first.status_code == 200
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused_v1.status_code == 429 and "capacity" in refused_v1.json()["error"]
    assert after.status_code == 200


def test_in_flight_gauge_returns_to_zero_after_burst(app_model):
    app, model = app_model

    async def run():
        async with _client(app) as client:
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=_chat(max_tokens=3))
                                          for _ in range(6)))

    statuses = sorted(r.status_code for r in asyncio.run(run()))
    assert set(statuses) <= {200, 429} and 200 in statuses
    assert model.runtime.engine.in_flight == 0
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("deepseek_ocr_requests_in_flight") == 0


def test_streaming_error_frame_after_start(app_model, monkeypatch):
    """An error after the stream started is an SSE error frame followed by [DONE], never a broken socket."""
    app, model = app_model
    from predictor.errors import EngineFault

    async def broken_events(*args, **kwargs):
        raise EngineFault("the model failed on this input")
        yield  # pragma: no cover

    monkeypatch.setattr(model.runtime.engine, "events", broken_events)

    async def run():
        async with _client(app) as client:
            return await client.post("/openai/v1/chat/completions", json=_chat(stream=True))

    response = asyncio.run(run())
    frames = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert response.status_code == 200
    assert '"role":"assistant"' in frames[0]
    assert '"error"' in frames[-2] and "failed on this input" in frames[-2]
    assert frames[-1] == "data: [DONE]"


def test_unknown_route_fields_are_ignored_like_openai(app):
    async def run():
        async with _client(app) as client:
            return await client.post("/v1/chat/completions", json=_chat(max_tokens=2, user="u1", metadata={"a": 1},
                                                                          frequency_penalty=0))

    assert asyncio.run(run()).status_code == 200


def test_body_limit_without_content_length(app):
    async def chunks():
        for _ in range(30):
            yield b"x" * 100_000

    async def run():
        async with _client(app) as client:
            return await client.post(f"/v1/models/{MODEL}:predict", content=chunks(),
                                     headers={"Content-Type": "image/png"})

    response = asyncio.run(run())
    assert response.status_code == 413


def test_factory_serves_every_route_family(app):
    """One factory: OpenAI on both prefixes, KServe v1/v2, liveness, health and metrics on the same app."""

    async def run():
        async with _client(app) as client:
            paths = ["/openai/v1/models", "/v1/models", f"/v1/models/{MODEL}", f"/v2/models/{MODEL}/ready",
                     "/v2/health/live", "/", "/health", "/metrics"]
            return {path: await client.get(path) for path in paths}

    responses = asyncio.run(run())
    assert {path: r.status_code for path, r in responses.items()} == dict.fromkeys(responses, 200)
    assert "deepseek_ocr_requests_in_flight" in responses["/metrics"].text
    assert responses["/v1/models"].json()["data"][0]["id"] == MODEL


@pytest.fixture(scope="module")
def roomy_app(tiny_v2_dir):
    """Room for both pages of a request at once (the shared app admits one request)."""
    from predictor.app import build_app
    from predictor.config import Settings

    app = build_app(Settings(model_dir=tiny_v2_dir, device="cpu", max_batch_size=2, max_queue=2))
    app.state.model.load()
    yield app
    app.state.model.stop_engine()


def test_openai_pages_same_with_and_without_streaming(roomy_app):
    """Several images in one message: the streamed text equals the non-streamed one, page separator included."""
    app = roomy_app
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + B64}}
    body = {"model": MODEL, "max_tokens": 6, "min_tokens": 6,
            "messages": [{"role": "user", "content": [part, part]}]}

    async def run():
        async with _client(app) as client:
            plain = await client.post("/v1/chat/completions", json=body)
            streamed = await client.post("/v1/chat/completions",
                                         json={**body, "stream": True, "stream_options": {"include_usage": True}})
            return plain, streamed

    plain, streamed = asyncio.run(run())
    assert plain.status_code == 200 and streamed.status_code == 200, (plain.text, streamed.text)
    import json

    frames = [json.loads(line[6:]) for line in streamed.text.splitlines()
              if line.startswith("data: {")]
    text = "".join(f["choices"][0]["delta"].get("content") or "" for f in frames if f["choices"])
    result = plain.json()
    assert text == result["choices"][0]["message"]["content"] and "<--- Page Split --->" in text
    assert len(result["ocr"]["pages"]) == 2
    assert frames[-1]["usage"] == {k: result["usage"][k] for k in frames[-1]["usage"]}
    assert result["usage"]["completion_tokens"] == 12


def test_v1_raw_body_as_octet_stream_or_untyped_is_an_image(app):
    """kserve parses application/octet-stream (and untyped) bodies as JSON; raw image bytes sent that way are OCRed
    like an image/png body, and what is neither image nor JSON gets a 400 naming the body."""
    url = f"/v1/models/{MODEL}:predict"
    octet, as_json = {"Content-Type": "application/octet-stream"}, {"Content-Type": "application/json"}

    async def run():
        async with _client(app) as client:
            return [await client.post(url, content=png_bytes(), headers=octet),
                    await client.post(url, content=png_bytes()),
                    await client.post(url, content=b"\x00garbage", headers=octet),
                    await client.post(url, content=b'{"instances": [', headers=as_json),
                    await client.post(url, content=f'{{"instances": [{{"image": "{B64}", "max_tokens": 2}}]}}',
                                      headers=octet)]

    octet, untyped, garbage, broken, json_as_octet = asyncio.run(run())
    for ok in (octet, untyped, json_as_octet):
        assert ok.status_code == 200 and ok.json()["predictions"][0]["finish_reason"], ok.text
    assert garbage.status_code == 400 and garbage.json() == {"error": "body is not a decodable image"}
    assert broken.status_code == 400 and broken.json()["error"].startswith("body is not valid JSON"), broken.text
