"""An engine that cannot recover turns readiness and liveness red, so Kubernetes stops routing and restarts the pod."""

from __future__ import annotations

import asyncio

import httpx

MODEL = "deepseek-ocr"


def test_unrecoverable_engine_turns_readiness_and_liveness_red(app_model):
    app, model = app_model
    beat = model.runtime.engine.worker.heartbeat
    paths = ["/v2/health/live", "/", f"/v2/models/{MODEL}/ready", f"/v1/models/{MODEL}", "/health"]

    async def probe():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return {path: (await client.get(path)).status_code for path in paths}

    assert asyncio.run(probe()) == dict.fromkeys(paths, 200)
    beat.fail("AcceleratorError: CUDA error: an illegal memory access was encountered")
    try:
        red = asyncio.run(probe())
        transport = httpx.ASGITransport(app=app)

        async def live_body():
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return (await client.get("/v2/health/live")).json()
        body = asyncio.run(live_body())
    finally:
        beat.fatal = None  # the session's shared app goes on serving the other tests
    assert red == dict.fromkeys(paths, 503), red
    assert body["status"] == "unhealthy" and "illegal memory access" in body["reason"]
