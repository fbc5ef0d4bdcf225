"""Gauges that add up (issue 24 item 4): under a mixed load (single pages and a PDF, at once), every /metrics scrape
shows in_flight == queued + running, queued counting every admitted page that is not decoding yet."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from tests.conftest import blank_pdf, png_bytes

IMAGE = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
PDF = "data:application/pdf;base64," + base64.b64encode(blank_pdf(4)).decode()
GAUGES = ("deepseek_ocr_requests_in_flight", "deepseek_ocr_requests_queued", "deepseek_ocr_requests_running")


@pytest.fixture(scope="module")
def app(tiny_v2_dir: str):
    from predictor.app import build_app
    from predictor.config import Settings

    settings = Settings(model_dir=tiny_v2_dir, device="cpu", max_batch_size=2, max_queue=16, default_max_tokens=8,
                        max_body_bytes=2_000_000)
    app = build_app(settings)
    app.state.model.load()
    yield app
    app.state.model.stop_engine()


def _chat(url: str, tokens: int) -> dict:
    return {"model": "deepseek-ocr", "max_tokens": tokens, "min_tokens": tokens,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}


def _gauges(text: str) -> tuple[float, ...]:
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in GAUGES:
            values[name] = float(value)
    return tuple(values[name] for name in GAUGES)


def test_in_flight_is_queued_plus_running_at_every_scrape_under_mixed_load(app):
    from prometheus_client import REGISTRY

    waits_before = REGISTRY.get_sample_value("deepseek_ocr_request_wait_seconds_count") or 0

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app",
                                     timeout=300) as client:
            work = [asyncio.create_task(client.post("/v1/chat/completions", json=_chat(PDF, 3)))]
            work += [asyncio.create_task(client.post("/v1/chat/completions", json=_chat(IMAGE, 8)))
                     for _ in range(3)]
            samples = []
            while not all(task.done() for task in work):
                samples.append(_gauges((await client.get("/metrics")).text))
                await asyncio.sleep(0.02)
            samples.append(_gauges((await client.get("/metrics")).text))
            return [task.result() for task in work], samples

    responses, samples = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    broken = [s for s in samples if s[0] != s[1] + s[2]]
    assert not broken, broken[:5]
    assert max(s[0] for s in samples) >= 5  # the load was there: the PDF's pages each hold a place
    assert max(s[1] for s in samples) > 2, samples  # pages waiting for a place, an image or a prefill are queued
    assert max(s[2] for s in samples) >= 1 and samples[-1] == (0, 0, 0)
    # each page's wait for its prefill is in the wait histogram (the PDF's 4 pages and 3 images)
    assert REGISTRY.get_sample_value("deepseek_ocr_request_wait_seconds_count") - waits_before == 7
