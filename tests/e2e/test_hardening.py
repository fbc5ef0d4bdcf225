"""Hostile and careless clients against a real server with a small capacity (2 running + 2 queued).

Abandoned requests stop generating, a failed multi-page request stops all its pages, and the model repository
extension cannot unload the model unless a flag allows it.
"""

from __future__ import annotations

import base64
import threading

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from openai import APITimeoutError, OpenAI, RateLimitError

from tests.builders import chat_body, image_part
from tests.conftest import png_bytes
from tests.e2e.metrics_probe import in_flight, tokens_after, wait_idle
from tests.e2e.server import Server, served

MODEL = "deepseek-ocr"
B64 = base64.b64encode(png_bytes()).decode()
DATA_URL = "data:image/png;base64," + B64
LONG = {"max_tokens": 3000, "min_tokens": 3000, "ngram_size": 0}


@pytest.fixture(scope="module")
def small(tiny_v2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = str(tmp_path_factory.mktemp("logs") / "small.log")
    with served(tiny_v2_dir, log, "--max_batch_size", "2", "--max_queue", "2",
                       "--max_images_per_request", "8", "--default_max_tokens", "16") as srv:
        yield srv


def _chat(images: int = 1, **options) -> dict:
    return chat_body(*[image_part(DATA_URL)] * images, **options)


def _assert_serving(srv: Server) -> None:
    r = httpx.post(f"{srv.url}/v1/chat/completions", json=_chat(max_tokens=4), timeout=120)
    assert r.status_code == 200, r.text
    for path in (f"/v1/models/{MODEL}", f"/v2/models/{MODEL}/ready", "/health", "/v2/health/ready"):
        assert httpx.get(srv.url + path, timeout=10).status_code == 200, path


def test_repository_unload_is_refused_by_default(small):
    r = httpx.post(f"{small.url}/v2/repository/models/{MODEL}/unload", timeout=10)
    assert r.status_code == 403 and "--enable_repository_extension" in r.json()["error"]
    assert httpx.post(f"{small.url}/v2/repository/models/{MODEL}/load", timeout=10).status_code == 403
    with grpc.insecure_channel(small.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=MODEL), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=10).ready
    _assert_serving(small)


def _abandon(n: int, call) -> None:
    """Run ``n`` calls concurrently, each expected to time out on the client side."""
    errors: list[BaseException] = []

    def one() -> None:
        try:
            call()
        except (APITimeoutError, httpx.TimeoutException) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == n, "every client should have given up"


def test_abandoned_openai_requests_stop_generating(small):
    client = OpenAI(base_url=small.url + "/v1", api_key="unused", timeout=1.5, max_retries=0)
    _abandon(4, lambda: client.chat.completions.create(**_chat(), max_tokens=3000,
                                                       extra_body={"min_tokens": 3000, "ngram_size": 0}))
    assert wait_idle(small.url, timeout=15), f"{in_flight(small.url)} requests still in flight"
    assert tokens_after(small.url) < 0.01 * 4 * 3000
    _assert_serving(small)


def test_abandoned_kserve_v1_requests_stop_generating(small):
    body = {"instances": [{"image": B64, **LONG}]}
    _abandon(4, lambda: httpx.post(f"{small.url}/v1/models/{MODEL}:predict", json=body, timeout=1.5))
    assert wait_idle(small.url, timeout=15), f"{in_flight(small.url)} requests still in flight"
    assert tokens_after(small.url) < 0.01 * 4 * 3000
    _assert_serving(small)


def test_multi_page_request_refused_with_429_stops_its_admitted_pages(small):
    client = OpenAI(base_url=small.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    with pytest.raises(RateLimitError):
        client.chat.completions.create(**_chat(images=8), max_tokens=3000,
                                       extra_body={"min_tokens": 3000, "ngram_size": 0})
    assert wait_idle(small.url, timeout=15), f"{in_flight(small.url)} requests still in flight"
    assert tokens_after(small.url) < 0.01 * 8 * 3000
    _assert_serving(small)
