"""Access control and the repository extension, against a real server started with two API keys (one from a
file, as a mounted Secret gives it) and --enable_repository_extension."""

from __future__ import annotations

import asyncio
import base64

import grpc
import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from openai import AuthenticationError, OpenAI

from tests.conftest import png_bytes
from tests.e2e.server import Server, served

MODEL = "deepseek-ocr"
PNG = png_bytes()
B64 = base64.b64encode(PNG).decode()
KEY_ENV, KEY_FILE = "env-key-0123456789", "file-key-9876543210"
BEARER = {"Authorization": f"Bearer {KEY_ENV}"}
CHAT = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + B64}}]}]}


@pytest.fixture(scope="module")
def locked(tiny_v2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    tmp = tmp_path_factory.mktemp("locked")
    key_file = tmp / "keys"
    key_file.write_text(f"# rotated in on Monday\n{KEY_FILE}\n")
    with served(tiny_v2_dir, str(tmp / "server.log"), "--api_key_file", str(key_file),
                       "--enable_repository_extension", "true", "--default_max_tokens", "8",
                       env={"PREDICTOR_API_KEY": KEY_ENV}) as srv:
        yield srv


def test_probes_and_metrics_stay_open(locked):
    for path in ("/v2/health/live", "/v2/health/ready", f"/v1/models/{MODEL}", f"/v2/models/{MODEL}/ready",
                 "/health", "/metrics"):
        assert httpx.get(locked.url + path, timeout=10).status_code == 200, path


def test_docs_are_off(locked):
    for path in ("/docs", "/openapi.json"):
        assert httpx.get(locked.url + path, headers=BEARER, timeout=10).status_code == 404, path


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key-000000"}, {"Authorization": KEY_ENV},
                                     {"api-key": "wrong-key-000000"}])
def test_http_routes_refuse_missing_or_wrong_keys(locked, headers):
    chat = httpx.post(f"{locked.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
    assert chat.status_code == 401 and chat.json()["error"]["code"] == "invalid_api_key"
    assert chat.headers["www-authenticate"] == "Bearer"
    v1 = httpx.post(f"{locked.url}/v1/models/{MODEL}:predict", json={"instances": [{"image": B64}]},
                    headers=headers, timeout=10)
    assert v1.status_code == 401 and isinstance(v1.json()["error"], str)
    for method, path in (("POST", f"/v2/models/{MODEL}/infer"), ("POST", f"/v2/repository/models/{MODEL}/unload"),
                         ("GET", "/v1/models"), ("GET", f"/v2/models/{MODEL}")):
        assert httpx.request(method, locked.url + path, headers=headers, timeout=10).status_code == 401, path
    assert KEY_ENV not in locked.log() and KEY_FILE not in locked.log()


def test_every_key_works_in_each_header(locked):
    for key in (KEY_ENV, KEY_FILE):
        client = OpenAI(base_url=locked.url + "/openai/v1", api_key=key)
        assert client.chat.completions.create(**CHAT).choices[0].message.content is not None
    azure = httpx.post(f"{locked.url}/v1/chat/completions", json=CHAT, headers={"api-key": KEY_FILE}, timeout=120)
    assert azure.status_code == 200
    v1 = httpx.post(f"{locked.url}/v1/models/{MODEL}:predict", json={"instances": [{"image": B64}]},
                    headers={"Authorization": f"bearer {KEY_FILE}"}, timeout=120)
    assert v1.status_code == 200
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=locked.url + "/v1", api_key="wrong-key-000000").chat.completions.create(**CHAT)


def _grpc_infer(target: str, metadata: list[tuple[str, str]] | None):
    async def call():
        client = InferenceGRPCClient(target)
        try:
            image = InferInput("image", [1], "BYTES")
            image.set_data_from_numpy(np.array([PNG], dtype=np.object_))
            return await client.infer(InferRequest(MODEL, infer_inputs=[image]), headers=metadata)
        finally:
            await client.close()

    return asyncio.run(call())


def test_grpc_reads_the_authorization_metadata(locked):
    with pytest.raises(grpc.RpcError) as err:
        _grpc_infer(locked.grpc_target, None)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as err:
        _grpc_infer(locked.grpc_target, [("authorization", "Bearer wrong-key-000000")])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    response = _grpc_infer(locked.grpc_target, [("authorization", f"Bearer {KEY_FILE}")])
    assert len(response.outputs[0].as_numpy()) == 1  # raw inputs are answered raw
    with grpc.insecure_channel(locked.grpc_target) as channel:  # probes stay open
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        assert stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=10).ready
        with pytest.raises(grpc.RpcError) as err:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=MODEL), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_enabled_repository_extension_unloads_honestly_and_loads_back(locked):
    url, auth = locked.url, BEARER
    assert httpx.post(f"{url}/v2/repository/models/{MODEL}/unload", headers=auth, timeout=60).status_code == 200
    for path in (f"/v1/models/{MODEL}", f"/v2/models/{MODEL}/ready", "/health", "/v2/health/ready"):
        assert httpx.get(url + path, timeout=10).status_code == 503, path
    chat = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth, timeout=10)
    assert chat.status_code == 503 and "unloaded" in chat.json()["error"]["message"]
    v1 = httpx.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": [{"image": B64}]}, headers=auth,
                    timeout=10)
    assert v1.status_code == 503
    with grpc.insecure_channel(locked.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert not stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=10).ready
        assert not stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        loaded = stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=MODEL), timeout=120,
                                          metadata=[("authorization", f"Bearer {KEY_ENV}")])
        assert loaded.isLoaded
    assert httpx.get(f"{url}/v1/models/{MODEL}", timeout=10).status_code == 200
    with grpc.insecure_channel(locked.grpc_target) as channel:
        assert pb_grpc.GRPCInferenceServiceStub(channel).ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth, timeout=120).status_code == 200
    missing = httpx.post(f"{url}/v2/repository/models/nope/load", headers=auth, timeout=10)
    assert missing.status_code == 404
