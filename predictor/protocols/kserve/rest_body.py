"""How a KServe v2 REST inference body is read: one rule for the KServe server and Ray Serve.

- No ``Inference-Header-Content-Length`` header: the body is JSON, whatever its Content-Type says (tritonclient
  sends its JSON with none; kserve alone then took it for binary and refused it).
- With the header: the binary tensor extension. The first N bytes are the JSON request; each input that carries
  ``parameters.binary_data_size`` instead of ``data`` takes that many of the bytes that follow, in input order.
  BYTES elements there are length-prefixed (4-byte little-endian length, then the bytes), as in gRPC's
  ``raw_input_contents``, so raw image bytes reach the model as images.

kserve's own reader turned raw bytes into UTF-8 text (a 500 quoting the bytes), took any header for a number (a
500 on ``abc``) and never checked a length against the body. Here every such mistake is a 400 that names the
header or the input's ``binary_data_size``, and no message quotes the request's bytes.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from kserve import InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput

from predictor.errors import InvalidRequest

HEADER = "inference-header-content-length"
_DIGITS = re.compile(r"\d{1,12}")


def read_v2_body(body: bytes, headers: dict[str, str] | None, model_name: str) -> InferRequest:
    raw_length = (headers or {}).get(HEADER)
    if raw_length is None:
        return _request(_json_object(body, None), b"", 0, model_name)
    length = _header_length(raw_length, len(body))
    return _request(_json_object(body[:length], length), body, length, model_name)


def _header_length(value: str, body_size: int) -> int:
    if not _DIGITS.fullmatch(value.strip()):
        raise InvalidRequest(f"the {HEADER} header must be a non-negative integer (the size of the JSON part of "
                             "the body)", param=HEADER)
    length = int(value)
    if length == 0 or length > body_size:
        raise InvalidRequest(f"the {HEADER} header says {length} bytes but the body has {body_size}", param=HEADER)
    return length


def _json_object(data: bytes, header_length: int | None) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    if header_length is None:  # the parser's message would quote the body: name what is wrong instead
        raise InvalidRequest(f"the body is not a JSON object; a binary body (tensor data after a JSON header) needs "
                             f"the {HEADER} header", param=HEADER)
    raise InvalidRequest(f"the first {header_length} bytes of the body ({HEADER}) are not a JSON object",
                         param=HEADER)


def _request(payload: dict[str, Any], body: bytes, offset: int, model_name: str) -> InferRequest:
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequest("'inputs' must be a non-empty list of tensors", param="inputs")
    infer_inputs = []
    for index, item in enumerate(inputs):
        infer_input, offset = _input(item, index, body, offset)
        infer_inputs.append(infer_input)
    if body and offset != len(body):
        raise InvalidRequest(f"{len(body) - offset} bytes follow the last binary input: {HEADER} or a "
                             "binary_data_size is wrong", param=HEADER)
    parameters = _object(payload.get("parameters"), "parameters")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("'id' must be a string", param="id")
    return InferRequest(model_name=model_name, infer_inputs=infer_inputs, request_id=request_id,
                        parameters=parameters, request_outputs=_outputs(payload.get("outputs")))


def _input(item: Any, index: int, body: bytes, offset: int) -> tuple[InferInput, int]:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object with name, shape, datatype and data", param=where)
    name, shape, datatype = item.get("name"), item.get("shape"), item.get("datatype")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise InvalidRequest(f"{where} needs a string 'name' and 'datatype'", param=where)
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidRequest(f"{where}.shape must be a list of integers", param=f"{where}.shape")
    parameters = _object(item.get("parameters"), f"{where}.parameters")
    infer_input = InferInput(name=name, shape=shape, datatype=datatype, parameters=parameters or {})
    if "data" in item:
        infer_input.data = item["data"]
        return infer_input, offset
    size = (parameters or {}).get("binary_data_size")
    field = f"{where}.parameters.binary_data_size"
    if size is None or not body:
        raise InvalidRequest(f"{where} has no 'data' (and no binary_data_size with the {HEADER} header)",
                             param=f"{where}.data")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidRequest(f"{field} must be a non-negative integer", param=field)
    if offset + size > len(body):
        raise InvalidRequest(f"{field} is {size} but only {len(body) - offset} bytes of the body are left",
                             param=field)
    infer_input._raw_data = body[offset:offset + size]
    return infer_input, offset + size


def _object(value: Any, field: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise InvalidRequest(f"'{field}' must be an object", param=field)
    return value


def _outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in value):
        raise InvalidRequest("'outputs' must be a list of objects with a 'name'", param="outputs")
    return [RequestedOutput(name=o["name"], parameters=_object(o.get("parameters"), "outputs.parameters"))
            for o in value]
