"""Loops flagged and recovered against real servers of fitted checkpoints: one that repeats a line forever, one that
writes a dense normal page. Every protocol reports the verdict; ``on_repetition: "retry"`` makes at most 3
attempts and says so; the batch client lists looping pages in review.csv and still exits 0."""

from __future__ import annotations

import asyncio
import base64
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from openai import OpenAI

from tests.conftest import png_bytes
from tests.e2e.server import served
from tests.e2e.test_pdf import pdf_bytes

MODEL = "deepseek-ocr"
PNG = png_bytes(text="minutes")
B64 = base64.b64encode(PNG).decode()
CAP = 300


@pytest.fixture(scope="module")
def loop_server(fitted_loop_dir, tmp_path_factory):
    log = str(tmp_path_factory.mktemp("loop") / "server.log")
    with served(fitted_loop_dir, log, "--default_max_tokens", str(CAP)) as srv:
        yield srv


@pytest.fixture(scope="module")
def normal_server(fitted_normal_dir, tmp_path_factory):
    log = str(tmp_path_factory.mktemp("normal") / "server.log")
    with served(fitted_normal_dir, log, "--default_max_tokens", "600") as srv:
        yield srv


def _messages(url: str = "data:image/png;base64," + B64) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]


def _openai(server, extra: dict) -> dict:
    client = OpenAI(base_url=server.url + "/v1", api_key="x")
    full = client.chat.completions.create(model=MODEL, messages=_messages(), extra_body=extra)
    return full.model_extra["ocr"]["pages"][0]["repetition"]


def _openai_stream(server, extra: dict) -> dict:
    client = OpenAI(base_url=server.url + "/v1", api_key="x")
    chunks = list(client.chat.completions.create(model=MODEL, messages=_messages(), stream=True, extra_body=extra))
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    return finish[0].model_extra["ocr"]["pages"][0]["repetition"]


def _v1(server, extra: dict) -> dict:
    body = {"instances": [{"image": B64, **extra}]}
    return httpx.post(f"{server.url}/v1/models/{MODEL}:predict", json=body, timeout=300).json()[
        "predictions"][0]["repetition"]


def _v1_stream(server, extra: dict) -> dict:
    body = {"instances": [{"image": B64, **extra}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/models/{MODEL}:predict", json=body, timeout=300) as response:
        frames = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: {") and "repetition" in line]
    return frames[-1]["repetition"]


def _v2(server, extra: dict, grpc: bool) -> dict:
    async def call():
        if grpc:
            client = InferenceGRPCClient(server.grpc_target)
            image = InferInput("image", [1], "BYTES")
            image.set_data_from_numpy(np.array([PNG], dtype=np.object_))
        else:
            client = InferenceRESTClient(RESTConfig(protocol="v2"))
            image = InferInput("image", [1], "BYTES", [B64])
        try:
            request = InferRequest(MODEL, infer_inputs=[image], parameters=extra)
            return await (client.infer(request) if grpc else client.infer(server.url, request, model_name=MODEL))
        finally:
            await client.close()

    value = {o.name: o for o in asyncio.run(call()).outputs}["repetition"].as_numpy().ravel()[0]  # raw over gRPC
    return json.loads(value.decode() if isinstance(value, bytes) else value)


CALLS = {"openai": _openai, "openai stream": _openai_stream, "v1": _v1, "v1 stream": _v1_stream,
         "v2 rest": lambda s, e: _v2(s, e, grpc=False), "v2 grpc": lambda s, e: _v2(s, e, grpc=True)}


def _verdicts(server, extra: dict | None = None) -> dict[str, dict]:
    """The page's loop verdict as each protocol reports it, all sent at once (the server batches them)."""
    with ThreadPoolExecutor(len(CALLS)) as pool:
        futures = {name: pool.submit(call, server, extra or {}) for name, call in CALLS.items()}
        return {name: future.result() for name, future in futures.items()}


def test_the_looping_page_is_flagged_on_every_protocol(loop_server):
    verdicts = _verdicts(loop_server)
    assert set(verdicts) == {"openai", "openai stream", "v1", "v1 stream", "v2 rest", "v2 grpc"}
    for name, verdict in verdicts.items():
        assert verdict["suspected"] is True, (name, verdict)
        assert verdict["reason"] in ("guard", "ngram", "line")
        assert "The quick brown fox" in verdict["span"]["text"], (name, verdict)
    unguarded = _openai(loop_server, {"ngram_size": 0})  # without the guard the loop is exact repetition
    assert unguarded["reason"] == "ngram" and unguarded["span"]["repeats"] >= 10, unguarded


def test_the_dense_normal_page_is_not_flagged(normal_server):
    for name, verdict in _verdicts(normal_server).items():
        assert verdict == {"suspected": False, "reason": None, "span": None}, (name, verdict)
    # cut by the cap in the middle of its dense table, it is still not a loop
    capped = _v1(normal_server, {"max_tokens": 200})
    assert capped["suspected"] is False, capped


def test_retry_makes_at_most_three_attempts_and_says_so(loop_server):
    client = OpenAI(base_url=loop_server.url + "/v1", api_key="x")
    retry = {"on_repetition": "retry"}
    pdf = base64.b64encode(pdf_bytes(2)).decode()
    body = {"instances": [{"image": pdf, "on_repetition": "retry"}]}
    with ThreadPoolExecutor(3) as pool:  # sent together: the server batches them
        full_future = pool.submit(client.chat.completions.create, model=MODEL, messages=_messages(),
                                  extra_body=retry)
        stream_future = pool.submit(lambda: list(client.chat.completions.create(
            model=MODEL, messages=_messages(), stream=True, extra_body=retry)))
        pdf_future = pool.submit(httpx.post, f"{loop_server.url}/v1/models/{MODEL}:predict", json=body, timeout=600)
        full, chunks, pdf_answer = full_future.result(), stream_future.result(), pdf_future.result()
    page = full.model_extra["ocr"]["pages"][0]
    attempts = page["attempts"]
    assert len(attempts) == 3  # it loops whatever is tried: the page, a stronger guard, another mode
    assert [a["attempt"] for a in attempts] == [1, 2, 3] and all(a["repetition_suspected"] for a in attempts)
    assert (attempts[1]["ngram_size"], attempts[1]["ngram_window"]) == (20, 1024)
    assert attempts[2]["mode"] != attempts[0]["mode"]
    assert sum(a["chosen"] for a in attempts) == 1 and page["repetition"]["suspected"]
    assert full.usage.completion_tokens == sum(a["completion_tokens"] for a in attempts) == 3 * CAP
    chosen = next(a for a in attempts if a["chosen"])
    assert chosen["confidence"] == max(a["confidence"] for a in attempts) == page["confidence"]
    # streamed: the chosen attempt's text, sent once the attempts are done; the finish chunk says what was tried
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    streamed = finish.model_extra["ocr"]["pages"][0]["attempts"]

    def tried(items):
        return [(a["attempt"], a["mode"], a["ngram_size"], a["ngram_window"], a["chosen"]) for a in items]
    assert tried(streamed) == tried(attempts)
    # every page of a PDF is retried on its own
    prediction = pdf_answer.json()["predictions"][0]
    assert prediction["repetition"]["suspected"] and prediction["repetition"]["pages"] == [1, 2]
    assert [len(p["attempts"]) for p in prediction["pages"]] == [3, 3]


def test_client_lists_looping_pages_for_review_and_exits_0(loop_server, tmp_path):
    from tests.e2e.client_helpers import make_images, run_client, summary_count

    make_images(tmp_path / "in", 1)
    out = tmp_path / "out"
    result = run_client("--url", loop_server.url, "-o", str(out), "--review-below", "0.8", "--retry-loops",
                        str(tmp_path / "in"))
    assert result.returncode == 0, result.stderr
    assert summary_count(result.stderr, "suspected of looping") == 1
    rows = (out / "review.csv").read_text().splitlines()
    looped = [r for r in rows[1:] if r.endswith(",True") and ",," in r]  # page rows of looping pages
    assert len(looped) == 1
    doc = json.loads((out / "p00.json").read_text())
    assert doc["pages"][0]["repetition"]["suspected"] and len(doc["pages"][0]["attempts"]) == 3
