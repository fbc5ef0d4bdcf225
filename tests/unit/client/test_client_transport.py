"""Batch client, no server: backoff math, Retry-After, which answers are retried, the two protocols' shapes."""

from __future__ import annotations

import email.utils
import json
import random

import httpx
import pytest

from predictor.client import protocol, transport
from predictor.client.pages import PageImage
from predictor.client.transport import RequestFailed, RetryPolicy, Transport, parse_retry_after


def test_backoff_doubles_up_to_the_cap_and_jitter_stays_in_half_to_full():
    policy = RetryPolicy(base_s=0.5, cap_s=30)
    assert [policy.backoff(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert policy.backoff(10_000) == 30  # no overflow for absurd retry counts
    assert policy.delay(3, None, 0.0) == 1.0 and policy.delay(3, None, 1.0) == 2.0


def test_retry_after_is_a_floor_and_capped():
    policy = RetryPolicy(base_s=0.5, cap_s=30, max_retry_after_s=120)
    assert policy.delay(1, 7, 0.0) == 7  # the server asks for longer than the backoff: wait what it says
    assert policy.delay(7, 1, 1.0) == 30  # the backoff has grown past it: keep backing off
    assert policy.delay(1, 10_000, 0.5) == 120  # a server cannot park the client for hours


def test_parse_retry_after_seconds_dates_and_garbage():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 0 ") == 0.0
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 42, usegmt=True), now=now) == pytest.approx(42)
    assert parse_retry_after(email.utils.formatdate(now - 42, usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("-1") is None


async def run(handler, policy: RetryPolicy, monkeypatch, headers=None):
    sleeps: list[float] = []
    retries: list[str] = []

    async def fake_sleep(seconds):
        sleeps.append(seconds)

    monkeypatch.setattr(transport.asyncio, "sleep", fake_sleep)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        t = Transport(client, policy, headers, on_retry=retries.append, rng=random.Random(0))
        try:
            return await t.post_json("http://server/x", b"{}"), sleeps, retries
        except RequestFailed as exc:
            return exc, sleeps, retries


async def test_429_and_503_are_retried_honouring_retry_after_and_auth_is_sent(monkeypatch):
    answers = iter([httpx.Response(429, headers={"Retry-After": "5"}, json={"error": "full"}),
                    httpx.Response(503, json={"error": {"message": "loading"}}),
                    httpx.Response(200, json={"ok": True})])
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("authorization"), request.headers.get("content-type")))
        return next(answers)

    result, sleeps, retries = await run(handler, RetryPolicy(base_s=0.5), monkeypatch,
                                        {"Authorization": "Bearer sk-test"})
    assert result == {"ok": True} and retries == ["HTTP 429", "HTTP 503"]
    assert sleeps[0] == 5 and 0.5 <= sleeps[1] <= 1.0  # Retry-After honoured; then retry 2's backoff, 1 s jittered
    assert seen == [("Bearer sk-test", "application/json")] * 3


async def test_client_errors_fail_at_once_with_the_servers_message(monkeypatch):
    def handler(request):
        return httpx.Response(400, json={"error": {"message": "image_url[0] is not a decodable image"}})

    error, sleeps, retries = await run(handler, RetryPolicy(), monkeypatch)
    assert isinstance(error, RequestFailed) and error.status == 400 and retries == [] and sleeps == []
    assert error.message == "HTTP 400: image_url[0] is not a decodable image"


async def test_connection_errors_are_retried_then_given_up(monkeypatch):
    calls = []

    def handler(request):
        calls.append(1)
        raise httpx.ConnectError("connection refused")

    error, sleeps, retries = await run(handler, RetryPolicy(max_retries=3, base_s=1, cap_s=3), monkeypatch)
    assert isinstance(error, RequestFailed) and "gave up after 3 retries" in error.message
    assert len(calls) == 4 and len(retries) == 3 and all(0.5 <= s <= 3 for s in sleeps)
    error, _, _ = await run(lambda r: httpx.Response(503, text="<html>busy</html>"),
                            RetryPolicy(max_retries=1, base_s=0), monkeypatch)
    assert error.status == 503 and "busy" in error.message and "gave up after 1 retries" in error.message


def test_endpoints_accept_a_root_or_an_openai_base_url():
    for url in ("http://h:8080", "http://h:8080/", "http://h:8080/v1", "http://h:8080/openai/v1/"):
        assert protocol.endpoint(url, "openai", "m").path == "http://h:8080/v1/chat/completions"
        assert protocol.endpoint(url, "v1", "m").path == "http://h:8080/v1/models/m:predict"
    assert protocol.endpoint("https://gw/ocr/v1", "v1", "m").path == "https://gw/ocr/v1/models/m:predict"


def test_request_bodies_carry_the_page_and_options():
    page = PageImage(b"\x89PNG", "image/png")
    opts = protocol.options("markdown", None, 16, pdf=True)
    assert opts == {"task": "markdown", "max_tokens": 16, "ngram_size": 20, "ngram_window": 50}
    openai_body = protocol.request_body(protocol.endpoint("http://h", "openai", "m"), page, opts)
    assert openai_body["model"] == "m" and openai_body["task"] == "markdown"
    assert openai_body["messages"][0]["content"][0]["image_url"]["url"] == "data:image/png;base64,iVBORw=="
    v1_body = protocol.request_body(protocol.endpoint("http://h", "v1", "m"), page, protocol.options(None, "base",
                                                                                                       None, False))
    assert v1_body == {"instances": [{"image": "iVBORw==", "mode": "base"}]}
    json.dumps(v1_body)


def test_answers_of_both_protocols_become_the_same_page_result():
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    block = {"label": "title", "text": "t", "boxes": [[1, 2, 3, 4]], "boxes_px": [[1, 2, 3, 4]]}
    openai_answer = {"choices": [{"message": {"content": "hi"}, "finish_reason": "length"}], "usage": usage,
                     "ocr": {"pages": [{"blocks": [block], "image_tokens": 3}]}}
    v1_answer = {"predictions": [{"text": "hi", "finish_reason": "length", "blocks": [block],
                                  "usage": {**usage, "image_tokens": 3}}]}
    assert protocol.parse_answer("openai", openai_answer) == protocol.parse_answer("v1", v1_answer)
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_answer("v1", {"predictions": []})
    assert protocol.error_message({"error": "kserve says"}, "x") == "kserve says"
    assert protocol.error_message(None, "fallback") == "fallback"
