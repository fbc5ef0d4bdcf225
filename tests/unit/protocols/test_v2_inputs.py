"""KServe v2 inputs over gRPC: damaged raw contents and shapes that do not match the data are 400s naming the
input (INVALID_ARGUMENT on the wire), never INTERNAL."""

from __future__ import annotations

import struct

import pytest
from kserve import InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from predictor.config import Settings
from predictor.errors import InvalidRequest
from predictor.families.v2 import DeepseekOcr2Family
from predictor.ocr.resolve import Resolver
from predictor.protocols.kserve.io import parse_v2
from tests.conftest import png_bytes

PNG = png_bytes((64, 32))
RESOLVER = Resolver(Settings(), DeepseekOcr2Family)


def _grpc(shape: list[int], raw: list[bytes] | None = None, contents: list[bytes] | None = None) -> InferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=shape)
    if contents is not None:
        tensor.contents.bytes_contents.extend(contents)
    request = pb.ModelInferRequest(model_name="deepseek-ocr", inputs=[tensor])
    if raw is not None:
        request.raw_input_contents.extend(raw)
    return InferRequest.from_grpc(request)


def _prefixed(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


@pytest.mark.parametrize("request_", [
    pytest.param(lambda: _grpc([1], raw=[b""]), id="empty raw contents"),
    pytest.param(lambda: _grpc([1], raw=[struct.pack("<I", 999) + b"abc"]), id="length prefix past the end"),
    pytest.param(lambda: _grpc([5], contents=[PNG]), id="shape [5] with 1 element"),
    pytest.param(lambda: _grpc([1], contents=[PNG, PNG]), id="shape [1] with 2 elements"),
    pytest.param(lambda: _grpc([3], raw=[_prefixed(PNG)]), id="raw: shape [3] with 1 element"),
])
def test_bad_grpc_inputs_name_the_input(request_):
    with pytest.raises(InvalidRequest) as info:
        parse_v2(request_(), RESOLVER)
    assert info.value.param == "image" and info.value.status == 400


def test_good_grpc_inputs():
    assert len(parse_v2(_grpc([1], raw=[_prefixed(PNG)]), RESOLVER).documents) == 1
    assert len(parse_v2(_grpc([2], contents=[PNG, PNG]), RESOLVER).documents) == 2
    assert len(parse_v2(_grpc([1, 2], contents=[PNG, PNG]), RESOLVER).documents) == 2
