"""OpenAI-compatible API against a real server: the official `openai` client, curl-style raw HTTP, errors."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time

import httpx
import pytest
import requests
from kserve import InferenceRESTClient, RESTConfig
from openai import AsyncOpenAI, BadRequestError, NotFoundError, OpenAI

from tests.conftest import png_bytes

MODEL = "deepseek-ocr"
DATA_URL = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


def _messages(text: str = "Free OCR.", url: str = DATA_URL) -> list[dict]:
    parts = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
    return [{"role": "user", "content": parts}]


@pytest.mark.parametrize("prefix", ["/v1", "/openai/v1"])
def test_openai_client_create_and_stream(server, prefix):
    client = OpenAI(base_url=server.url + prefix, api_key="not-needed")
    extra = {"min_tokens": 12, "ngram_size": 0}
    full = client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=12, temperature=0,
                                          extra_body=extra)
    choice = full.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason == "length"
    assert full.usage.completion_tokens == 12
    assert full.usage.prompt_tokens == 257 + 5  # image tokens + BOS + "\nFree OCR."
    assert full.usage.total_tokens == full.usage.prompt_tokens + 12
    ocr = full.model_extra["ocr"]  # structured results, readable from the openai client as an extra field
    assert ocr["pages"][0]["image_tokens"] == 257 and isinstance(ocr["blocks"], list)
    stream = client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True}, extra_body=extra)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
    assert [m.id for m in client.models.list().data] == [MODEL, "ocr-alias", "deepseek-ai/DeepSeek-OCR-2"]
    assert client.models.retrieve(MODEL).id == MODEL


def test_async_openai_client(server):
    async def call():
        client = AsyncOpenAI(base_url=server.url + "/v1", api_key="x")
        results = await asyncio.gather(*(client.chat.completions.create(
            model="ocr-alias", messages=_messages(), max_tokens=6, extra_body={"min_tokens": 6}) for _ in range(3)))
        await client.close()
        return results

    results = asyncio.run(call())
    assert all(r.usage.completion_tokens == 6 for r in results)
    assert len({r.choices[0].message.content for r in results}) == 1  # greedy: same input, same output


@pytest.mark.slow
def test_original_deployment_examples(server):
    """The three request examples of the original deployment's README work unchanged."""
    payload = {"model": "deepseek-ocr", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Extract all text from this document"},
        {"type": "image_url", "image_url": {"url": DATA_URL}}]}], "temperature": 0.0, "max_tokens": 8192}
    curl = subprocess.run(["curl", "-s", "-X", "POST", f"{server.url}/v1/chat/completions", "-H",
                           "Content-Type: application/json", "-d", json.dumps(payload)],
                          capture_output=True, text=True, timeout=300, check=True)
    body = json.loads(curl.stdout)
    assert body["object"] == "chat.completion" and isinstance(body["choices"][0]["message"]["content"], str)
    payload["messages"][0]["content"][0]["text"] = "Convert this image to markdown format"
    content = requests.post(f"{server.url}/v1/chat/completions", json=payload, timeout=300).json()[
        "choices"][0]["message"]["content"]
    assert isinstance(content, str)
    client = OpenAI(base_url=f"{server.url}/v1", api_key="not-needed")
    response = client.chat.completions.create(model="deepseek-ocr", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Extract all text"}, {"type": "image_url", "image_url": {"url": DATA_URL}}]}])
    assert response.choices[0].finish_reason in ("stop", "length")


def test_kserve_client_still_sees_v1_models(server):
    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v1"))
        try:
            return await client.is_model_ready(server.url, MODEL)
        finally:
            await client.close()

    assert asyncio.run(call()) is True
    listing = httpx.get(f"{server.url}/v1/models", timeout=10).json()
    assert listing["models"] == [MODEL, "ocr-alias", "deepseek-ai/DeepSeek-OCR-2"] and listing["object"] == "list"
    card = httpx.get(f"{server.url}/v1/models/{MODEL}", timeout=10).json()
    assert card["ready"] is True and card["name"] == MODEL and card["id"] == MODEL
    assert httpx.get(f"{server.url}/v1/models/nope", timeout=10).status_code == 404
    health = httpx.get(f"{server.url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"


BAD = [
    ("not json", None, 400, None),
    ({"model": MODEL, "messages": []}, None, 400, "messages"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}, None, 400, "messages"),
    ({"model": MODEL, "messages": [{"role": "user", "content": []}]}, None, 400, "messages"),
    ({"model": MODEL, "messages": _messages(url="data:image/png;base64,@@@")}, None, 400, "image_url[0]"),
    ({"model": MODEL, "messages": _messages(url=base64.b64encode(b"not an image").decode())}, None, 400,
     "image_url[0]"),
    ({"model": MODEL, "messages": _messages(), "n": 2}, None, 400, "n"),
    ({"model": MODEL, "messages": _messages(), "tools": [{"type": "function"}]}, None, 400, "tools"),
    ({"model": MODEL, "messages": _messages(), "logprobs": True}, None, 400, "logprobs"),
    ({"model": MODEL, "messages": _messages(), "max_tokens": 0}, None, 400, "max_tokens"),
    ({"model": MODEL, "messages": _messages(), "temperature": "hot"}, None, 400, "temperature"),
    ({"model": MODEL, "messages": _messages(), "extra_body": {"bogus": 1}}, None, 400, "extra_body.bogus"),
    ({"model": MODEL, "messages": _messages(), "mode": "gundam"}, None, 400, "mode"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}, None, 400, None),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": DATA_URL}}] * 4}]}, None, 400, "messages"),
    ({"model": MODEL, "messages": _messages(url="http://127.0.0.1/x.png")}, None, 400, "image_url[0]"),
    ({"model": "gpt-4o", "messages": _messages()}, None, 404, "model"),
]


@pytest.mark.parametrize(("body", "_", "status", "param"), BAD)
def test_bad_requests_get_openai_errors(server, body, _, status, param):
    data = body if isinstance(body, str) else json.dumps(body)
    r = httpx.post(f"{server.url}/v1/chat/completions", content=data, headers={"Content-Type": "application/json"},
                   timeout=30)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] is not None and param in error["param"], error
    if status == 404:
        assert error["code"] == "model_not_found"


def test_openai_client_raises_typed_errors(server):
    client = OpenAI(base_url=server.url + "/openai/v1", api_key="x", max_retries=0)
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="other", messages=_messages())
    with pytest.raises(BadRequestError):
        client.chat.completions.create(model=MODEL, messages=_messages(), n=3)


def test_body_too_large_is_413(server):
    big = json.dumps({"model": MODEL, "messages": _messages(url="data:image/png;base64," + "A" * 9_000_000)})
    r = httpx.post(f"{server.url}/v1/chat/completions", content=big, headers={"Content-Type": "application/json"},
                   timeout=30)
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"


def _in_flight(server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("deepseek_ocr_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("in-flight gauge missing from /metrics")


def test_disconnecting_streams_free_their_generation(server):
    body = {"model": MODEL, "messages": _messages(), "stream": True, "max_tokens": 4000, "min_tokens": 4000,
            "ngram_size": 0}
    for _ in range(20):
        with httpx.Client(timeout=60) as client, client.stream("POST", f"{server.url}/v1/chat/completions",
                                                                 json=body) as response:
            assert response.status_code == 200
            for n, _line in enumerate(response.iter_lines()):
                if n >= 6:
                    break  # closing the connection mid-stream
    deadline = time.monotonic() + 30
    while _in_flight(server) != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _in_flight(server) == 0
    # twenty abandoned 4000-token generations would take far longer than this if they were still running
    start = time.monotonic()
    ok = httpx.post(f"{server.url}/v1/chat/completions", json={"model": MODEL, "messages": _messages(),
                                                               "max_tokens": 4}, timeout=120)
    assert ok.status_code == 200
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    print(f"request after 20 disconnects took {time.monotonic() - start:.2f}s")
