"""Past the grace, requests the engine does not hold (reading a body, decoding pages) are cut by the drain
middleware itself and answered: 503 with Retry-After, or an SSE error event then [DONE] when a stream started."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from predictor.server.drain import Drainer, DrainMiddleware


class FakeModel:
    draining = False
    runtime = None
    grpc_in_flight = 1

    def __init__(self) -> None:
        self.stopped = 0

    def stop_engine(self) -> None:
        self.stopped += 1


async def _forever(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await asyncio.Event().wait()


async def _stream_forever(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b'data: {"text": "a"}\n\n', "more_body": True})
    await asyncio.Event().wait()


async def _untyped_stream_forever(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """As kserve sends the KServe v1 stream (no Content-Type), still waiting for its first event."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.Event().wait()


async def _call(app: Any, drainer: Drainer, sent: list[dict[str, Any]]) -> None:
    scope = {"type": "http", "method": "POST", "path": "/v1/models/m:predict", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await DrainMiddleware(app, drainer)(scope, receive, send)


def test_cut_answers_what_the_engine_does_not_hold():
    async def scenario() -> tuple[Drainer, FakeModel, list[list[dict[str, Any]]]]:
        model = FakeModel()
        drainer = Drainer(model, grace=0.1)
        sent: list[list[dict[str, Any]]] = [[], [], []]
        apps = (_forever, _stream_forever, _untyped_stream_forever)
        tasks = [asyncio.ensure_future(_call(app, drainer, into)) for app, into in zip(apps, sent, strict=True)]
        while drainer.active < 3 or not (sent[1] and sent[2]):  # both streams started
            await asyncio.sleep(0.01)
        model.draining = True
        assert not await drainer.wait_idle()
        await drainer.cut_remaining()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
        return drainer, model, sent

    drainer, model, (plain, *streams) = asyncio.run(scenario())
    assert drainer.cut == 4 and drainer.active == 0 and model.stopped == 1  # 3 HTTP + 1 gRPC
    start = plain[0]
    assert start["status"] == 503 and dict(start["headers"])[b"retry-after"] == b"1"
    assert "retry on another replica" in json.loads(plain[1]["body"])["error"]
    for stream in streams:
        assert stream[0]["status"] == 200
        bodies = [m["body"] for m in stream[1:]]
        assert json.loads(bodies[-2].decode()[len("data: "):])["error"]
        assert bodies[-1] == b"data: [DONE]\n\n" and stream[-1]["more_body"] is False
