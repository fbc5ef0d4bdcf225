"""kserve's own SDK clients: REST v1 and v2, gRPC (issue 19). Reproduction: ``InferenceRESTClient(v2)
.is_server_live()`` returned None (our liveness body had no ``live``)."""

from __future__ import annotations

import asyncio

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

from tests.interop.conftest import B64, MAX_TOKENS, MODEL, PNG


def _run(make_client, call):
    async def go():
        client = make_client()
        try:
            return await call(client)
        finally:
            await client.close()

    return asyncio.run(go())


def _as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_rest_v1(server, expected):
    async def call(client):
        live = await client.is_server_live(server.url)
        ready = await client.is_model_ready(server.url, MODEL)
        result = await client.infer(server.url, {"instances": [{"image": B64}]}, model_name=MODEL)
        return live, ready, result

    live, ready, result = _run(lambda: InferenceRESTClient(RESTConfig(protocol="v1")), call)
    assert live is True and ready is True
    assert result["predictions"][0]["text"] == expected


def test_rest_v2(server, expected):
    async def call(client):
        live = await client.is_server_live(server.url)
        ready = await client.is_server_ready(server.url)
        model_ready = await client.is_model_ready(server.url, MODEL)
        request = InferRequest(MODEL, infer_inputs=[InferInput("image", [1], "BYTES", [B64])],
                               parameters={"max_tokens": MAX_TOKENS})
        return live, ready, model_ready, await client.infer(server.url, request, model_name=MODEL)

    live, ready, model_ready, response = _run(lambda: InferenceRESTClient(RESTConfig(protocol="v2")), call)
    assert (live, ready, model_ready) == (True, True, True)
    text = {o.name: o for o in response.outputs}["text"].data[0]
    assert _as_text(text) == expected


def test_grpc(server, expected):
    async def call(client):
        live, ready = await client.is_server_live(), await client.is_server_ready()
        model_ready = await client.is_model_ready(MODEL)
        image = InferInput("image", [1], "BYTES")
        image.set_data_from_numpy(np.array([PNG], dtype=np.object_))
        response = await client.infer(InferRequest(MODEL, infer_inputs=[image], parameters={"max_tokens": MAX_TOKENS}))
        return live, ready, model_ready, response

    live, ready, model_ready, response = _run(lambda: InferenceGRPCClient(server.grpc_target), call)
    assert (live, ready, model_ready) == (True, True, True)
    text = {o.name: o for o in response.outputs}["text"].as_numpy()[0]
    assert _as_text(text) == expected
