"""tritonclient, the most used KServe v2 client, over HTTP (JSON and the binary extension) and gRPC (issue 19).

Run by test_triton.py in a process of its own (tritonclient's protobuf messages clash with kserve's).

Reproductions: gRPC model metadata failed (INTERNAL: our tensor metadata carried ``parameters``); HTTP JSON tensors
were refused (tritonclient sends JSON with no Content-Type).
"""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.interop.conftest import B64, MAX_TOKENS, MODEL, PNG

PARAMS = {"max_tokens": MAX_TOKENS}


@pytest.fixture(scope="module")
def http(server):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.http_port}", network_timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc(server):
    client = grpcclient.InferenceServerClient(url=server.grpc_target)
    yield client
    client.close()


def _text(result) -> str:
    value = result.as_numpy("text")[0]  # bytes when it came binary, str from JSON
    return value.decode() if isinstance(value, bytes) else value


def _tensors(module, value, binary: bool):
    image = module.InferInput("image", [1], "BYTES")
    if module is httpclient:
        image.set_data_from_numpy(np.array([value], dtype=object), binary_data=binary)
        outputs = [module.InferRequestedOutput(name, binary_data=binary) for name in ("text", "usage")]
    else:
        image.set_data_from_numpy(np.array([value], dtype=object))
        outputs = [module.InferRequestedOutput(name) for name in ("text", "usage")]
    return [image], outputs


def test_http_probes_and_metadata(http):
    assert http.is_server_live() and http.is_server_ready() and http.is_model_ready(MODEL)
    server = http.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]
    assert "model_repository_extension" not in server["extensions"]  # off by default: it answers 403
    metadata = http.get_model_metadata(MODEL)
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == [("image", "BYTES"), ("prompt", "BYTES")]


def test_grpc_probes_and_metadata_equal_rest(http, grpc):
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready(MODEL)
    over_grpc = grpc.get_model_metadata(MODEL, as_json=True)
    over_rest = http.get_model_metadata(MODEL)

    def tensors(metadata, key):
        return [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in metadata[key]]

    for key in ("inputs", "outputs"):
        assert tensors(over_grpc, key) == tensors(over_rest, key)
    assert over_grpc["name"] == over_rest["name"] == MODEL
    assert grpc.get_server_metadata(as_json=True)["extensions"] == http.get_server_metadata()["extensions"]


@pytest.mark.parametrize("value, binary", [(PNG, True), (B64, False), (B64, True)],
                         ids=["raw-bytes-binary", "base64-json", "base64-binary"])
def test_http_infer(http, expected, value, binary):
    inputs, outputs = _tensors(httpclient, value, binary)
    result = http.infer(MODEL, inputs, outputs=outputs, parameters=PARAMS)
    assert _text(result) == expected
    assert result.as_numpy("usage").shape == (1, 3) and result.as_numpy("usage")[0][1] > 0


def test_http_infer_all_outputs_binary_by_default(http, expected):
    """No outputs named: tritonclient asks for every output in binary (binary_data_output)."""
    image = httpclient.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array([PNG], dtype=object), binary_data=True)
    result = http.infer(MODEL, [image], parameters=PARAMS)
    assert _text(result) == expected
    names = {o["name"] for o in result.get_response()["outputs"]}
    # every output the request produced (figures only when asked), each one the metadata announces
    assert names == {"text", "finish_reason", "blocks", "usage", "pages", "confidence", "repetition"}
    assert names <= {o["name"] for o in http.get_model_metadata(MODEL)["outputs"]}


@pytest.mark.parametrize("value", [PNG, B64.encode()], ids=["raw-bytes", "base64"])
def test_grpc_infer(grpc, expected, value):
    inputs, outputs = _tensors(grpcclient, value, True)
    result = grpc.infer(MODEL, inputs, outputs=outputs, parameters=PARAMS)
    assert _text(result) == expected


def test_http_bad_image_is_a_400_without_its_bytes(http):
    inputs, outputs = _tensors(httpclient, PNG[:100], True)
    with pytest.raises(InferenceServerException) as info:
        http.infer(MODEL, inputs, outputs=outputs, parameters=PARAMS)
    assert info.value.status() == "400" and "image[0]" in info.value.message()
    assert "IHDR" not in info.value.message()
