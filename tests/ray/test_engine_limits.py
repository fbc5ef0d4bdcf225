"""The engine's limits through Serve: disconnects free their rows, overload is our 429, metrics reach Ray's export."""

from __future__ import annotations

import base64
import concurrent.futures
import re
import socket
import time
from urllib.parse import urlparse

import httpx

from tests.builders import chat_body, image_part, text_part
from tests.conftest import png_bytes
from tests.ray.conftest import wait_until

MODEL = "deepseek-ocr"
DATA_URL = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
LONG = {"max_tokens": 3000, "min_tokens": 3000, "ngram_size": 0}  # minutes on this CPU: only ends if cancelled


def _chat(stream: bool, **options) -> dict:
    return chat_body(text_part("Free OCR."), image_part(DATA_URL), stream=stream, **options)


def _gauge(text: str, name: str) -> float | None:
    """Sum of a metric's samples in a Prometheus text page (None when the name is absent)."""
    values = [float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(values) if values else None


def _in_flight(url: str) -> float:
    value = _gauge(httpx.get(f"{url}/metrics", timeout=10).text, "deepseek_ocr_requests_in_flight")
    assert value is not None, "in-flight gauge missing from /metrics"
    return value


def _open_stream(url: str, wait_for_tokens: bool = True) -> tuple[httpx.Client, httpx.Response, object]:
    client = httpx.Client(timeout=120)
    response = client.send(client.build_request("POST", f"{url}/v1/chat/completions", json=_chat(True, **LONG)),
                           stream=True)
    assert response.status_code == 200
    lines = response.iter_lines()
    for _ in range(4 if wait_for_tokens else 0):  # role chunk and the first tokens: the row is running
        next(lines)
    return client, response, lines  # the caller keeps `lines`: a collected line iterator closes the stream


def test_streaming_clients_that_disconnect_free_their_rows(ocr_app):
    for _ in range(3):
        client, response, _ = _open_stream(ocr_app)
        response.close()
        client.close()
    wait_until(lambda: _in_flight(ocr_app) == 0, 60, "in-flight back to 0 after stream disconnects")


def test_a_non_streaming_client_that_disconnects_frees_its_row(ocr_app):
    body = httpx.Request("POST", f"{ocr_app}/v1/chat/completions", json=_chat(False, **LONG))
    address = urlparse(ocr_app)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
        payload = body.read()
        sock.sendall(head.encode() + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        wait_until(lambda: _in_flight(ocr_app) == 1, 60, "the request admitted by the engine")
    # the socket is closed with the request still generating: Serve's proxy cancels the replica's call
    wait_until(lambda: _in_flight(ocr_app) == 0, 60, "in-flight back to 0 after a non-streaming disconnect")


def test_beyond_capacity_is_an_openai_429_with_retry_after(ocr_app):
    held = [_open_stream(ocr_app) for _ in range(2)]  # max_batch_size 2: both running
    try:
        held.append(_open_stream(ocr_app, wait_for_tokens=False))  # + max_queue 1: waits in the engine's queue
        assert _in_flight(ocr_app) == 3
        r = httpx.post(f"{ocr_app}/v1/chat/completions", json=_chat(False, max_tokens=2), timeout=60)
        assert r.status_code == 429, r.text
        assert r.headers["Retry-After"] == "1"
        assert r.json()["error"]["type"] and "capacity" in r.json()["error"]["message"]
    finally:
        for client, response, _ in held:
            response.close()
            client.close()
    wait_until(lambda: _in_flight(ocr_app) == 0, 60, "in-flight back to 0")
    ok = httpx.post(f"{ocr_app}/v1/chat/completions", json=_chat(False, max_tokens=2), timeout=120)
    assert ok.status_code == 200


def test_engine_metrics_per_replica_in_rays_export_read_0_when_idle(ocr_app, ray_cluster):
    httpx.post(f"{ocr_app}/v1/chat/completions", json=_chat(False, max_tokens=3, min_tokens=3), timeout=120)

    def exported() -> bool:
        text = ray_cluster.metrics()
        return (_gauge(text, "ray_deepseek_ocr_requests_in_flight") == 0
                and (_gauge(text, "ray_deepseek_ocr_generation_tokens_total") or 0) >= 3)

    wait_until(exported, 30, "mirrored engine metrics in Ray's export")
    text = ray_cluster.metrics()
    line = next(ln for ln in text.splitlines() if ln.startswith("ray_deepseek_ocr_requests_in_flight{"))
    assert 'application="ocr"' in line and 'deployment="deepseek-ocr"' in line and "replica=" in line
    # idle for several report intervals: a gauge not set again would have vanished from the export by now
    time.sleep(6)
    assert _gauge(ray_cluster.metrics(), "ray_deepseek_ocr_requests_in_flight") == 0
    # the Ray Serve metrics docs/RAY.md tells operators to scale and alert on exist under these names
    text = ray_cluster.metrics()
    for name in ("ray_serve_num_ongoing_requests_at_replicas", "ray_serve_deployment_status",
                 "ray_serve_deployment_replica_starts_total", "ray_serve_num_http_requests_total",
                 "ray_serve_http_request_latency_ms_bucket", "ray_serve_deployment_processing_latency_ms_bucket",
                 "ray_serve_autoscaling_target_replicas", "ray_serve_autoscaling_desired_replicas",
                 "ray_serve_deployment_queued_queries", "ray_deepseek_ocr_requests_running"):
        assert _gauge(text, name) is not None, name


def test_concurrent_requests_all_answer(ocr_app):
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        codes = list(pool.map(lambda _: httpx.post(f"{ocr_app}/v1/chat/completions", timeout=120,
                                                   json=_chat(False, max_tokens=4)).status_code, range(3)))
    assert codes == [200, 200, 200]
