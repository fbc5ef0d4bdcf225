"""Requests that outlive a short shutdown grace, on every protocol, and clients that hang up mid-body: shared by
the e2e tests (tests/e2e/test_shutdown_grace.py, test_hangups.py) and the soak suite (tests/soak)."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable

import grpc
import httpx
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.conftest import png_bytes

MODEL = "deepseek-ocr"
CHAT, V1, V2 = "/v1/chat/completions", f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"
B64 = base64.b64encode(png_bytes()).decode()
LONG = {"max_tokens": 3000, "min_tokens": 3000, "ngram_size": 0}


def chat(stream: bool) -> dict:
    return {"model": MODEL, "stream": stream, **LONG, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + B64}}]}]}


def v1(stream: bool) -> dict:
    return {"stream": stream, "instances": [{"image": B64, **LONG}]}


def grpc_infer(target: str) -> grpc.StatusCode:
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


def sse(url: str, body: dict) -> tuple[int, list[str]]:
    """Status and the ``data:`` lines of a streamed answer."""
    with httpx.stream("POST", url, json=body, timeout=120) as response:
        return response.status_code, [line for line in response.iter_lines() if line.startswith("data: ")]


def start_upload(port: int, path: str = V1) -> socket.socket:
    """A client that promises a 100 kB body and sends a few bytes of it: still uploading when the grace ends."""
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              "Content-Length: 100000\r\n\r\n{\"instances\": ".encode())
    return s


def answer(s: socket.socket) -> str:
    """Everything the server sends on ``s`` until it closes."""
    with s:
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    return received.decode("latin-1")


def hang_up(port: int, path: str) -> None:
    """Headers promising 5000 bytes, 9 of them, then close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Content-Length: 5000\r\n\r\n{\"model\":".encode())
        time.sleep(0.02)


def record(results: dict[str, object], name: str, call: Callable[[], object]) -> None:
    """Run ``call`` (in a thread) and keep what it returned or raised."""
    try:
        results[name] = call()
    except Exception as exc:  # noqa: BLE001 - a broken connection is a result the caller reports
        results[name] = exc
