"""Every protocol through Ray Serve's proxy answers what the KServe server answers for the same greedy request.

The reference is the app the KServe server serves (the same factory), run in-process on the same checkpoint.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from fastapi.testclient import TestClient
from openai import BadRequestError, NotFoundError, OpenAI

from tests.conftest import png_bytes

MODEL = "deepseek-ocr"
PNG = png_bytes()
B64 = base64.b64encode(PNG).decode()
DATA_URL = "data:image/png;base64," + B64
GREEDY = {"max_tokens": 10, "min_tokens": 10, "ngram_size": 0}


def _messages(url: str = DATA_URL) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "Free OCR."},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


@pytest.fixture(scope="module")
def reference(tiny_v2_dir: str):
    """The KServe server's app (same factory, same checkpoint), in-process."""
    from predictor.app import build_app
    from predictor.config import Settings

    settings = Settings(model_dir=tiny_v2_dir, device="cpu", served_model_names=["ocr-alias"], max_batch_size=2,
                        max_queue=1, default_max_tokens=16)
    app = build_app(settings)
    app.state.model.load()
    with TestClient(app) as client:
        yield client
    app.state.model.stop_engine()


def _post(url: str, path: str, **kw) -> httpx.Response:
    return httpx.post(url + path, timeout=120, **kw)


@pytest.mark.parametrize("prefix", ["/v1", "/openai/v1"])
def test_openai_chat_json_and_sse_equal_the_kserve_server(ocr_app, reference, prefix):
    client = OpenAI(base_url=ocr_app + prefix, api_key="unused")
    full = client.chat.completions.create(model=MODEL, messages=_messages(), temperature=0,
                                          max_tokens=GREEDY["max_tokens"], extra_body=GREEDY)
    expected = reference.post(f"{prefix}/chat/completions",
                              json={"model": MODEL, "messages": _messages(), "temperature": 0, **GREEDY}).json()
    assert full.choices[0].message.content == expected["choices"][0]["message"]["content"]
    assert full.usage.model_dump() == {k: expected["usage"][k] for k in ("completion_tokens", "prompt_tokens",
                                                                          "total_tokens")} | {
        "completion_tokens_details": None, "prompt_tokens_details": None}
    assert full.usage.completion_tokens == 10 and full.choices[0].finish_reason == "length"
    chunks = list(client.chat.completions.create(model="ocr-alias", messages=_messages(), temperature=0,
                                                 max_tokens=10, stream=True, extra_body=GREEDY))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == full.choices[0].message.content
    assert [m.id for m in client.models.list().data] == [MODEL, "ocr-alias", "deepseek-ai/DeepSeek-OCR-2"]


def test_kserve_v1_json_raw_body_and_sse_equal_the_kserve_server(ocr_app, reference):
    path = f"/v1/models/{MODEL}:predict"
    body = {"instances": [{"image": B64, **GREEDY}]}
    got, want = _post(ocr_app, path, json=body), reference.post(path, json=body)
    assert got.status_code == want.status_code == 200, got.text
    assert got.json()["predictions"][0]["text"] == want.json()["predictions"][0]["text"]
    assert got.json()["predictions"][0]["usage"] == want.json()["predictions"][0]["usage"]
    raw = _post(ocr_app, path, content=PNG, headers={"Content-Type": "image/png"})
    raw_want = reference.post(path, content=PNG, headers={"Content-Type": "image/png"})
    assert raw.status_code == 200 and raw.json()["predictions"] == raw_want.json()["predictions"]
    stream_body = {"instances": [{"image": B64, **GREEDY}], "stream": True}
    with httpx.stream("POST", ocr_app + path, json=stream_body, timeout=120) as r:
        assert r.status_code == 200
        frames = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    final = json.loads(frames[-2])
    assert final["text"] == "".join(json.loads(f)["text"] for f in frames[:-2])
    assert final["text"] == want.json()["predictions"][0]["text"]


def test_kserve_v2_rest_equals_the_kserve_server(ocr_app, reference):
    path = f"/v2/models/{MODEL}/infer"
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [B64]}],
            "parameters": GREEDY}
    got, want = _post(ocr_app, path, json=body), reference.post(path, json=body)
    assert got.status_code == want.status_code == 200, got.text
    outputs = {o["name"]: o["data"] for o in got.json()["outputs"]}
    assert outputs == {o["name"]: o["data"] for o in want.json()["outputs"]}
    assert httpx.get(f"{ocr_app}/v2/models/{MODEL}/ready", timeout=10).status_code == 200
    assert httpx.get(f"{ocr_app}/v2/health/live", timeout=10).status_code == 200


def test_kserve_v2_json_without_content_type_is_json(ocr_app, reference):
    """tritonclient sends its JSON with no Content-Type; kserve alone took it for the binary extension (400)."""
    path = f"/v2/models/{MODEL}/infer"
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [B64]}], "parameters": GREEDY}
    got = _post(ocr_app, path, content=json.dumps(body).encode())
    want = reference.post(path, json=body)
    assert got.status_code == want.status_code == 200, got.text
    assert got.json()["outputs"] == want.json()["outputs"]
    bad = _post(ocr_app, path, content=b"{}", headers={"Inference-Header-Content-Length": "abc"})
    assert bad.status_code == 400 and "inference-header-content-length" in bad.json()["error"].lower()


def test_errors_keep_their_shapes(ocr_app):
    client = OpenAI(base_url=ocr_app + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=_messages("data:image/png;base64,bm90IGFuIGltYWdl"))
    assert bad.value.body["type"] == "invalid_request_error" and bad.value.body["param"]
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=_messages())
    r = _post(ocr_app, f"/v1/models/{MODEL}:predict", json={"instances": [{"image": "bm90IGFuIGltYWdl"}]})
    assert r.status_code == 400 and isinstance(r.json()["error"], str)  # KServe's shape on KServe routes
    metrics = httpx.get(f"{ocr_app}/metrics", timeout=10)
    assert metrics.status_code == 200 and "deepseek_ocr_requests_in_flight" in metrics.text


APP = (("application", "ocr"),)  # Serve's gRPC proxy picks the application from this metadata


def _grpc(ray_cluster, calls):
    import asyncio

    from kserve import InferenceGRPCClient

    async def run():
        client = InferenceGRPCClient(f"127.0.0.1:{ray_cluster.grpc_port}")
        try:
            return [await c(client) for c in calls]
        finally:
            await client.close()

    return asyncio.run(run())


def test_kserve_v2_grpc_through_serves_grpc_proxy_equals_rest(ocr_app, ray_cluster, reference):
    import grpc
    import numpy as np
    from kserve import InferInput, InferRequest

    def infer(model: str, data: bytes):
        image = InferInput("image", [1], "BYTES")
        image.set_data_from_numpy(np.array([data], dtype=np.object_))
        return lambda c: c.infer(InferRequest(model, infer_inputs=[image], parameters=GREEDY),
                                 headers=APP)

    live, ready, response = _grpc(ray_cluster, [
        lambda c: c.is_server_live(headers=APP),
        lambda c: c.is_model_ready("ocr-alias", headers=APP),
        infer(MODEL, PNG)])
    assert live is True and ready is True
    outputs = {o.name: list(o.as_numpy()) for o in response.outputs}  # raw inputs are answered raw
    want = reference.post(f"/v2/models/{MODEL}/infer", json={
        "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [B64]}], "parameters": GREEDY}).json()
    want_text = next(o["data"] for o in want["outputs"] if o["name"] == "text")
    assert [t.decode() if isinstance(t, bytes) else t for t in outputs["text"]] == want_text
    for model, data, code in ((MODEL, b"not an image", grpc.StatusCode.INVALID_ARGUMENT),
                              ("no-such-model", PNG, grpc.StatusCode.NOT_FOUND)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            _grpc(ray_cluster, [infer(model, data)])
        assert err.value.code() == code, (model, err.value)


def test_kserve_v2_grpc_metadata_equals_rest(ocr_app, ray_cluster):
    """Model metadata decodes in a gRPC client (no tensor parameters) and equals REST's; /v2 extensions agree."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    with grpc.insecure_channel(f"127.0.0.1:{ray_cluster.grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), metadata=APP, timeout=30)
        server = stub.ServerMetadata(pb.ServerMetadataRequest(), metadata=APP, timeout=30)
    rest = httpx.get(f"{ocr_app}/v2/models/{MODEL}", timeout=10).json()
    for key in ("inputs", "outputs"):
        assert [(t.name, t.datatype, list(t.shape)) for t in getattr(meta, key)] == [
            (t["name"], t["datatype"], t["shape"]) for t in rest[key]]
    assert list(server.extensions) == httpx.get(f"{ocr_app}/v2", timeout=10).json()["extensions"]
    assert "model_repository_extension" not in server.extensions


def test_the_playground_page_is_served_through_serve(ocr_app, reference):
    for path in ("/ui", "/ui/app.js", "/ui/request.js", "/ui/view.js", "/ui/app.css"):
        served = httpx.get(ocr_app + path, timeout=30)
        assert served.status_code == 200 and served.content == reference.get(path).content, path
    config = httpx.get(ocr_app + "/ui/config.json", timeout=30).json()
    # the served names, then the weights' hub id (served too by default: --serve_hub_name)
    assert config["ready"] is True and config["models"][:2] == [MODEL, "ocr-alias"]
    assert config["limits"]["max_body_bytes"] == reference.get("/ui/config.json").json()["limits"]["max_body_bytes"]
