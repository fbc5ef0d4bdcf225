"""The protective pieces on their own: key checks, the 500 catcher, cancelling sibling pages, prompt text."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI

from predictor.errors import InvalidRequest, Overloaded, Unauthorized
from predictor.ocr.aio import gather_or_cancel
from predictor.ocr.tasks import build_prompt
from predictor.server.auth import KeyChecker, bearer_token
from predictor.server.http_errors import UnexpectedErrorMiddleware


def test_key_checker():
    checker = KeyChecker(["first-key-123", "second-key-456"])
    assert checker.enabled and checker.valid("first-key-123") and checker.valid("second-key-456")
    assert not checker.valid("first-key-12") and not checker.valid(None) and not checker.valid("")
    assert bearer_token("Bearer  abc ") == "abc" and bearer_token("bearer abc") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer") is None
    with pytest.raises(Unauthorized, match="required"):
        checker.check(None)
    with pytest.raises(Unauthorized, match="not valid") as info:
        checker.check("Bearer nope-nope-nope")
    assert "nope" not in info.value.message
    checker.check(None, api_key="second-key-456")
    assert not KeyChecker([]).enabled


def test_open_paths_are_only_probes():
    checker = KeyChecker(["k" * 10], metrics_auth=True)
    for path in ("/", "/health", "/v2/health/live", "/v2/health/ready", "/v1/models/deepseek-ocr",
                 "/v2/models/deepseek-ocr/ready"):
        assert checker.is_open("GET", path), path
    for method, path in (("POST", "/v1/models/deepseek-ocr:predict"), ("GET", "/v1/models"), ("GET", "/metrics"),
                         ("POST", "/v2/repository/models/deepseek-ocr/unload"), ("GET", "/v2/models/deepseek-ocr"),
                         ("POST", "/v1/models/deepseek-ocr"), ("GET", "/openapi.json")):
        assert not checker.is_open(method, path), path
    assert KeyChecker(["k" * 10]).is_open("GET", "/metrics")


def test_unexpected_errors_hide_internals_log_the_request_id_and_close(caplog):
    app = FastAPI()

    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    app.add_api_route("/v1/models/x:predict", boom, methods=["POST"])
    app.add_middleware(UnexpectedErrorMiddleware)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post("/v1/models/x:predict", headers={"X-Request-Id": "req-42"})

    with caplog.at_level(logging.ERROR):
        r = asyncio.run(call())
    assert r.status_code == 500 and r.headers["connection"] == "close"
    assert "RuntimeError" not in r.text and "secret" not in r.text and "req-42" in r.json()["error"]
    assert "req-42" in caplog.text and "secret internal detail" in caplog.text


def test_one_failure_cancels_the_other_pages():
    cancelled = []

    async def page(n: int) -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return n

    async def refused() -> int:
        await asyncio.sleep(0.01)
        raise Overloaded("full")

    async def run() -> None:
        await gather_or_cancel(page(1), refused(), page(2))

    with pytest.raises(Overloaded):
        asyncio.run(run())
    assert sorted(cancelled) == [1, 2]


@pytest.mark.parametrize("prompt", ["<<image>image>", "<image>", "<<<image>image>image>"])
def test_nested_placeholders_never_survive(prompt):
    with pytest.raises(InvalidRequest) as info:
        build_prompt(prompt=prompt)
    assert info.value.param == "prompt"
    assert build_prompt(prompt="a<<image>image>b") == "<image>\nab"


def test_lone_surrogate_is_refused():
    with pytest.raises(InvalidRequest) as info:
        build_prompt(prompt="read \ud800 this")
    assert info.value.param == "prompt"
