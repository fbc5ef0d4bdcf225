"""The v2 REST body rule and server metadata of our data plane, without a model (issue 19 item 2, issue 24 items 2
and 6); the in-process app tests (tests/api/test_v2_rest_body.py) drive the same rule through the routes."""

from __future__ import annotations

import json
import struct

import pytest

from predictor.errors import InvalidRequest
from predictor.protocols.kserve.dataplane import OcrDataPlane
from predictor.protocols.kserve.rest_body import HEADER, read_v2_body


def _binary(elements: list[bytes]) -> tuple[bytes, int]:
    raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    header = json.dumps({"inputs": [{"name": "image", "shape": [len(elements)], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "text", "parameters": {"binary_data": True}}]}).encode()
    return header + raw, len(header)


def test_json_without_the_header_is_json():
    body = json.dumps({"id": "r1", "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                               "data": ["aGk="]}], "parameters": {"max_tokens": 3}}).encode()
    request = read_v2_body(body, {"content-type": "application/octet-stream"}, "m")
    assert request.id == "r1" and request.parameters == {"max_tokens": 3}
    assert request.inputs[0].data == ["aGk="] and request.inputs[0]._raw_data is None


def test_binary_inputs_keep_their_raw_bytes():
    body, length = _binary([b"\x89PNG\x00\xff", b"\x00"])
    request = read_v2_body(body, {HEADER: str(length)}, "m")
    assert list(request.inputs[0].as_numpy()) == [b"\x89PNG\x00\xff", b"\x00"]
    assert request.request_outputs[0].binary_data is True


@pytest.mark.parametrize("headers, param", [({}, HEADER), ({HEADER: "abc"}, HEADER), ({HEADER: "-1"}, HEADER),
                                            ({HEADER: "0"}, HEADER), ({HEADER: "10"}, HEADER)])
def test_bodies_that_are_neither_are_400s_naming_the_header(headers, param):
    with pytest.raises(InvalidRequest) as info:
        read_v2_body(b"\x89PNG\x01\x02\x03\x04\x05\x06\x07\x08\x09", headers, "m")
    assert info.value.param == param and "PNG" not in info.value.message


def test_server_metadata_lists_enabled_extensions_only():
    assert OcrDataPlane({}, repository_extension=False).metadata()["extensions"] == ["binary_tensor_data"]
    assert "model_repository_extension" in OcrDataPlane({}, repository_extension=True).metadata()["extensions"]
