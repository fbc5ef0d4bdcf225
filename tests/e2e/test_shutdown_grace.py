"""SIGTERM with requests still running when --shutdown_grace runs out: each one is told to retry elsewhere (503 with
Retry-After, a stream's error event then [DONE], gRPC UNAVAILABLE), the log counts them, and the exit status is not 0
(before: uvicorn's plain-text 500 with Connection: close, streams cut short, exit 0)."""

from __future__ import annotations

import json
import re
import signal
import threading
import time

import grpc
import httpx

from tests.e2e import long_requests as lr
from tests.e2e.server import start_server

SHORT_GRACE = 2


def test_sigterm_past_grace_answers_503_and_exits_non_zero(tiny_v2_dir, tmp_path):
    """Requests still running when --shutdown_grace runs out: 503 with Retry-After (non-streamed, and a client still
    sending its body), an error event then [DONE] (streamed, OpenAI and KServe v1), UNAVAILABLE (gRPC); the log
    counts them; the exit status is not 0."""
    srv = start_server(tiny_v2_dir, str(tmp_path / "server.log"), "--shutdown_grace", str(SHORT_GRACE))
    calls = {
        "openai": lambda: httpx.post(srv.url + lr.CHAT, json=lr.chat(False), timeout=120),
        "openai-stream": lambda: lr.sse(srv.url + lr.CHAT, lr.chat(True)),
        "v1": lambda: httpx.post(srv.url + lr.V1, json=lr.v1(False), timeout=120),
        "v1-stream": lambda: lr.sse(srv.url + lr.V1, lr.v1(True)),
        "grpc": lambda: lr.grpc_infer(srv.grpc_target),
        "slow-upload": lambda: lr.answer(upload),
    }
    results: dict[str, object] = {}
    try:
        srv.wait_ready()
        upload = lr.start_upload(srv.http_port)
        threads = [threading.Thread(target=lr.record, args=(results, k, f)) for k, f in calls.items()]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # all but the upload admitted and generating
            if f"deepseek_ocr_requests_in_flight {len(calls) - 1}.0" in httpx.get(f"{srv.url}/metrics",
                                                                                  timeout=10).text:
                break
            time.sleep(0.05)
        srv.process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=120)
        code = srv.process.wait(timeout=60)
        log = srv.log()
    finally:
        srv.stop()
    for name in ("openai", "v1"):
        response = results[name]
        assert isinstance(response, httpx.Response), (name, response)
        assert response.status_code == 503, (name, response.status_code, response.text[:200])
        assert int(response.headers["retry-after"]) > 0
        assert response.headers["content-type"].startswith("application/json")  # not uvicorn's plain-text 500
    assert results["openai"].json()["error"]["type"] == "server_error"
    assert results["v1"].json()["error"]
    for name in ("openai-stream", "v1-stream"):
        status, events = results[name]
        assert status == 200 and events[-1] == "data: [DONE]", (name, events[-3:])
        assert "error" in json.loads(events[-2][len("data: "):]), (name, events[-3:])
    assert results["grpc"] == grpc.StatusCode.UNAVAILABLE
    head = str(results["slow-upload"]).split("\r\n\r\n")[0].lower()
    assert head.startswith("http/1.1 503") and "retry-after: 1" in head, results["slow-upload"]
    cut = re.search(r"cutting (\d+) request", log)
    assert cut is not None and int(cut.group(1)) == len(calls), log
    assert code not in (0, None) and code > 0, (code, log)
