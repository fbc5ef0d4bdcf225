"""Logprobs, confidence and loop verdicts on every protocol, against a real server, read by real clients."""

from __future__ import annotations

import asyncio
import base64
import json
import math

import httpx
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from openai import OpenAI

from tests.conftest import png_bytes

MODEL = "deepseek-ocr"
PNG = png_bytes(text="trust me")
B64 = base64.b64encode(PNG).decode()
DATA_URL = "data:image/png;base64," + B64
FIXED = {"min_tokens": 24, "ngram_size": 0}


def _messages() -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": DATA_URL}}]}]


def _check_entries(entries, k: int) -> None:
    assert entries
    for entry in entries:
        assert isinstance(entry.token, str) and entry.logprob <= 0 and isinstance(entry.bytes, list)
        values = [t.logprob for t in entry.top_logprobs]
        assert len(values) == k and values == sorted(values, reverse=True)
        assert entry.token in [t.token for t in entry.top_logprobs]  # greedy: the chosen token is the top one
        assert math.isclose(entry.top_logprobs[0].logprob, entry.logprob, abs_tol=1e-6)


def test_openai_logprobs_streamed_and_not(server):
    client = OpenAI(base_url=server.url + "/v1", api_key="x")
    extra = {**FIXED, "raw": True}
    full = client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=24, temperature=0,
                                          logprobs=True, top_logprobs=3, extra_body=extra)
    choice = full.choices[0]
    entries = choice.logprobs.content
    _check_entries(entries, 3)
    assert len(entries) == full.usage.completion_tokens == 24
    assert b"".join(bytes(e.bytes) for e in entries).decode("utf-8", "replace") == choice.message.content  # raw
    ocr = full.model_extra["ocr"]
    page = ocr["pages"][0]
    probs = [math.exp(e.logprob) for e in entries]
    assert math.isclose(page["confidence"], sum(probs) / len(probs), abs_tol=1e-3)
    assert math.isclose(page["min_confidence"], min(probs), abs_tol=1e-3)
    assert page["repetition"]["suspected"] in (True, False) and ocr["confidence"] == page["confidence"]

    chunks = list(client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=24, temperature=0,
                                                 logprobs=True, top_logprobs=3, stream=True, extra_body=extra))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in entries]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content

    plain = client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=8,
                                           extra_body={**FIXED, "min_tokens": 8})
    assert plain.choices[0].logprobs is None  # only when asked
    assert 0 < plain.model_extra["ocr"]["pages"][0]["confidence"] <= 1  # confidence is always there


def test_openai_refuses_top_logprobs_out_of_range(server):
    body = {"model": MODEL, "messages": _messages(), "logprobs": True, "top_logprobs": 21}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400 and response.json()["error"]["param"] == "top_logprobs"
    body = {"model": MODEL, "messages": _messages(), "top_logprobs": 2}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400 and response.json()["error"]["param"] == "top_logprobs"


def test_kserve_v1_and_v2_logprobs_and_confidence(server):
    async def call():
        v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
        v2 = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            body = {"instances": [{"image": B64, "max_tokens": 24, "logprobs": True, "top_logprobs": 2, **FIXED}]}
            first = await v1.infer(server.url, body, model_name=MODEL)
            image = InferInput("image", [1], "BYTES", [B64])
            request = InferRequest(MODEL, [image], parameters={"max_tokens": 24, "logprobs": True,
                                                               "top_logprobs": 2, **FIXED})
            second = await v2.infer(server.url, request, model_name=MODEL)
        finally:
            await v1.close()
            await v2.close()
        return first, second

    first, second = asyncio.run(call())
    prediction = first["predictions"][0]
    entries = prediction["logprobs"]["content"]
    assert len(entries) == 24 and all(len(e["top_logprobs"]) == 2 for e in entries)
    assert 0 < prediction["min_confidence"] <= prediction["confidence"] <= 1
    assert set(prediction["repetition"]) >= {"suspected", "reason", "span"}
    outputs = {o.name: o for o in second.outputs}
    assert {"confidence", "repetition", "logprobs"} <= set(outputs)
    conf = outputs["confidence"].data
    assert math.isclose(conf[0], prediction["confidence"], abs_tol=1e-4)  # greedy: the same page, the same numbers
    v2_entries = json.loads(outputs["logprobs"].data[0])["content"]
    assert [e["logprob"] for e in v2_entries] == [e["logprob"] for e in entries]
    assert json.loads(outputs["repetition"].data[0])["suspected"] is prediction["repetition"]["suspected"]


def test_client_review_csv_and_retry_loops(server, tmp_path):
    from tests.e2e.client_helpers import make_images, run_client, summary_count

    make_images(tmp_path / "in", 2)
    out = tmp_path / "out"
    result = run_client("--url", server.url, "--max-tokens", "6", "-o", str(out), "--review-below", "0.99",
                        "--retry-loops", str(tmp_path / "in"))
    assert result.returncode == 0, result.stderr
    rows = (out / "review.csv").read_text().splitlines()
    assert rows[0] == "file,page,block,label,confidence,looped"
    assert summary_count(result.stderr, "to review") == len(rows) - 1 >= 2  # random weights: low confidence
    doc = json.loads((out / "p00.json").read_text())
    page = doc["pages"][0]
    assert 0 < page["confidence"] < 0.99 and page["repetition"]["suspected"] is False
    assert page["attempts"] and page["attempts"][0]["chosen"]  # on_repetition: retry was sent
