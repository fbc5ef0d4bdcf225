"""SIGTERM drains: readiness turns 503 at once, new requests get 503 with Retry-After, the requests in flight
finish, and the process exits 0 within --shutdown_grace."""

from __future__ import annotations

import base64
import signal
import threading
import time

import httpx
import pytest

from tests.conftest import png_bytes
from tests.e2e.server import served

MODEL = "deepseek-ocr"
B64 = base64.b64encode(png_bytes()).decode()
GRACE = 60


@pytest.mark.slow
def test_sigterm_drains_in_flight_requests(tiny_v2_dir, tmp_path):
    with served(tiny_v2_dir, str(tmp_path / "server.log"), "--shutdown_grace", str(GRACE)) as srv:
        results: list[httpx.Response] = []
        body = {"instances": [{"image": B64, "max_tokens": 300, "min_tokens": 300, "ngram_size": 0}]}

        def call() -> None:
            results.append(httpx.post(f"{srv.url}/v1/models/{MODEL}:predict", json=body, timeout=GRACE))

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # all four admitted and generating
            text = httpx.get(f"{srv.url}/metrics", timeout=10).text
            if "deepseek_ocr_requests_in_flight 4.0" in text:
                break
            time.sleep(0.05)
        srv.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        deadline = time.monotonic() + 10
        while (ready := httpx.get(f"{srv.url}/v2/models/{MODEL}/ready", timeout=10)).status_code == 200:
            if time.monotonic() > deadline:  # the signal was not handled: the assertion below says so
                break
            time.sleep(0.02)
        live = httpx.get(f"{srv.url}/v2/health/live", timeout=10)
        refused = httpx.post(f"{srv.url}/v1/chat/completions", timeout=10, json={
            "model": MODEL, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + B64}}]}]})
        for t in threads:
            t.join()
        code = srv.process.wait(timeout=GRACE)
        elapsed = time.monotonic() - sent
    assert ready.status_code == 503 and live.status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "model_not_ready"
    assert [r.status_code for r in results] == [200] * 4, [r.text[:200] for r in results]
    assert all(r.json()["predictions"][0]["usage"]["completion_tokens"] == 300 for r in results)
    assert code == 0, srv.log()
    assert elapsed < GRACE
