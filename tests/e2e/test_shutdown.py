"""SIGTERM drains: readiness turns 503 at once, new requests get 503 with Retry-After, the requests in flight
finish, and the process exits 0 within --shutdown_grace; past the grace, those still running are answered 503 (or an
error event, or UNAVAILABLE) and the exit status is not 0."""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Callable

import grpc
import httpx
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.conftest import png_bytes
from tests.e2e.server import start_server

MODEL = "deepseek-ocr"
B64 = base64.b64encode(png_bytes()).decode()
GRACE = 60


def test_sigterm_drains_in_flight_requests(tiny_v2_dir, tmp_path):
    srv = start_server(tiny_v2_dir, str(tmp_path / "server.log"), "--shutdown_grace", str(GRACE))
    try:
        srv.wait_ready()
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
        time.sleep(0.3)
        ready = httpx.get(f"{srv.url}/v2/models/{MODEL}/ready", timeout=10)
        live = httpx.get(f"{srv.url}/v2/health/live", timeout=10)
        refused = httpx.post(f"{srv.url}/v1/chat/completions", timeout=10, json={
            "model": MODEL, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + B64}}]}]})
        for t in threads:
            t.join()
        code = srv.process.wait(timeout=GRACE)
        elapsed = time.monotonic() - sent
    finally:
        srv.stop()
    assert ready.status_code == 503 and live.status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "model_not_ready"
    assert [r.status_code for r in results] == [200] * 4, [r.text[:200] for r in results]
    assert all(r.json()["predictions"][0]["usage"]["completion_tokens"] == 300 for r in results)
    assert code == 0, srv.log()
    assert elapsed < GRACE


# ---- past the grace -------------------------------------------------------------------------------------------------

SHORT_GRACE = 2
LONG = {"max_tokens": 3000, "min_tokens": 3000, "ngram_size": 0}


def _chat(stream: bool) -> dict:
    return {"model": MODEL, "stream": stream, **LONG, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + B64}}]}]}


def _grpc_infer(target: str) -> grpc.StatusCode:
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(png_bytes())
    request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor])
    for key, value in LONG.items():
        request.parameters[key].int64_param = value
    with grpc.insecure_channel(target) as channel:
        try:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=120)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _sse(url: str, body: dict) -> tuple[int, list[str]]:
    with httpx.stream("POST", url, json=body, timeout=120) as response:
        return response.status_code, [line for line in response.iter_lines() if line.startswith("data: ")]


def _start_upload(port: int) -> socket.socket:
    """A client that will still be sending its body when the grace runs out."""
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    s.sendall(f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              "Content-Length: 100000\r\n\r\n{\"instances\": ".encode())
    return s


def _answer(s: socket.socket) -> str:
    with s:
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    return received.decode("latin-1")


def _record(results: dict[str, object], name: str, call: Callable[[], object]) -> None:
    try:
        results[name] = call()
    except Exception as exc:  # noqa: BLE001 - a broken connection is a result the test reports
        results[name] = exc


def test_sigterm_past_grace_answers_503_and_exits_non_zero(tiny_v2_dir, tmp_path):
    """Requests still running when --shutdown_grace runs out: 503 with Retry-After (non-streamed, and a client still
    sending its body), an error event then [DONE] (streamed, OpenAI and KServe v1), UNAVAILABLE (gRPC); the log
    counts them; the exit status is not 0."""
    srv = start_server(tiny_v2_dir, str(tmp_path / "server.log"), "--shutdown_grace", str(SHORT_GRACE))
    calls = {
        "openai": lambda: httpx.post(f"{srv.url}/v1/chat/completions", json=_chat(False), timeout=120),
        "openai-stream": lambda: _sse(f"{srv.url}/v1/chat/completions", _chat(True)),
        "v1": lambda: httpx.post(f"{srv.url}/v1/models/{MODEL}:predict", timeout=120,
                                 json={"instances": [{"image": B64, **LONG}]}),
        "v1-stream": lambda: _sse(f"{srv.url}/v1/models/{MODEL}:predict",
                                  {"stream": True, "instances": [{"image": B64, **LONG}]}),
        "grpc": lambda: _grpc_infer(srv.grpc_target),
        "slow-upload": lambda: _answer(upload),
    }
    results: dict[str, object] = {}
    try:
        srv.wait_ready()
        upload = _start_upload(srv.http_port)
        threads = [threading.Thread(target=_record, args=(results, k, f)) for k, f in calls.items()]
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
        assert "Connection: close" not in response.text
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
