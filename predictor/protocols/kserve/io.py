"""KServe v1 and v2 (Open Inference Protocol) request parsing and response building.

v1: ``{"instances": [{"image": <base64 or data URL>, "prompt": ..., <options>}]}`` or a raw image body.
v2: a BYTES input ``image`` (base64 strings over REST, raw bytes over gRPC), an optional BYTES ``prompt`` and
options as parameters. REST takes base64 because kserve's REST server does not accept the binary tensor extension
for BYTES inputs (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from kserve.protocol.infer_type import to_http_parameters
from kserve.utils.utils import generate_uuid

from predictor.errors import InvalidRequest, PayloadTooLarge
from predictor.ocr.documents import decode_base64
from predictor.ocr.options import OcrOptions, parse_options
from predictor.ocr.resolve import Resolver, prefixed
from predictor.ocr.types import Document, OcrOutput

# v2 parameters that belong to the protocol, not to us.
_V2_PROTOCOL_PARAMS = frozenset({"binary_data_output", "headers", "content_type"})


@dataclass
class ParsedRequest:
    documents: list[Document]  # one per instance (v1) or image element (v2)
    protocol: str  # "v1" | "v2"
    stream: bool = False
    v2_request: InferRequest | None = None


# ---- v1 -------------------------------------------------------------------------------------------------------


def parse_v1(payload: dict[str, Any] | bytes, resolver: Resolver) -> ParsedRequest:
    settings = resolver.settings
    if isinstance(payload, bytes | bytearray):
        if len(payload) > settings.max_body_bytes:
            raise PayloadTooLarge(f"body exceeds the {settings.max_body_bytes}-byte limit", param="body")
        if payload.lstrip()[:1] == b"{":
            # curl -d without -H sends JSON as form data, which kserve hands over as raw bytes
            raise InvalidRequest("body looks like JSON but was not sent as JSON: add the header "
                                 "'Content-Type: application/json'", param="body")
        return ParsedRequest([resolver.document(bytes(payload), "body", OcrOptions())], "v1")
    if not isinstance(payload, dict):
        raise InvalidRequest("body must be a JSON object with an 'instances' list", param="instances")
    instances = payload.get("instances")
    if not isinstance(instances, list):
        raise InvalidRequest("'instances' must be a list of objects", param="instances")
    if not instances:
        raise InvalidRequest("'instances' is empty", param="instances")
    if len(instances) > settings.max_instances:
        raise InvalidRequest(f"{len(instances)} instances exceed the limit of {settings.max_instances}",
                             param="instances")
    documents = resolver.documents([_v1_instance(item, i, resolver) for i, item in enumerate(instances)])
    stream = _flag(payload.get("stream", False), "stream")
    if stream and (len(documents) != 1 or len(documents[0].pages) != 1):
        raise InvalidRequest("stream needs exactly one instance with one image (not a multi-page PDF)",
                             param="stream")
    return ParsedRequest(documents, "v1", stream=stream)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be a boolean", param=name)
    return value


def _v1_instance(item: Any, index: int, resolver: Resolver) -> tuple[bytes, str, OcrOptions, str]:
    where = f"instances[{index}]"
    if isinstance(item, str):
        item = {"image": item}  # a bare base64 string per instance is accepted too
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object with an 'image' field", param=where)
    if "image" not in item:
        raise InvalidRequest(f"{where}.image is required", param=f"{where}.image")
    try:
        options = parse_options({k: v for k, v in item.items() if k != "image"})
    except InvalidRequest as exc:
        raise prefixed(exc, where) from exc
    data = decode_base64(item["image"], f"{where}.image", resolver.settings.max_body_bytes)
    return data, f"{where}.image", options, where


def v1_response(outputs: list[OcrOutput], model_name: str) -> dict[str, Any]:
    return {"model_name": model_name, "predictions": [_prediction(o) for o in outputs]}


def _prediction(output: OcrOutput) -> dict[str, Any]:
    prediction: dict[str, Any] = {"text": output.text, "finish_reason": output.finish_reason,
                                  "usage": output.usage, "blocks": output.blocks}
    if output.rendered_png is not None:
        prediction["rendered_png"] = output.rendered_png
    if output.pages:
        prediction["pages"] = [_prediction(page) for page in output.pages]
    return prediction


# ---- v2 -------------------------------------------------------------------------------------------------------


def parse_v2(request: InferRequest, resolver: Resolver) -> ParsedRequest:
    settings = resolver.settings
    inputs = {inp.name: inp for inp in request.inputs}
    unknown = set(inputs) - {"image", "prompt"}
    if unknown:
        raise InvalidRequest(f"unknown input(s) {sorted(unknown)}; expected 'image' and optional 'prompt'",
                             param=sorted(unknown)[0])
    if "image" not in inputs:
        raise InvalidRequest("input 'image' (BYTES) is required", param="image")
    images = _bytes_elements(inputs["image"], "image")
    if not images:
        raise InvalidRequest("input 'image' is empty", param="image")
    if len(images) > settings.max_instances:
        raise InvalidRequest(f"{len(images)} images exceed the limit of {settings.max_instances}", param="image")
    prompts: list[Any] = [None] * len(images)
    if "prompt" in inputs:
        given = [_text(p, "prompt") for p in _bytes_elements(inputs["prompt"], "prompt")]
        if len(given) not in (1, len(images)):
            raise InvalidRequest("input 'prompt' must have one element or one per image", param="prompt")
        prompts = given * len(images) if len(given) == 1 else given
    params = _v2_parameters(request)
    options = parse_options({**params, "prompt": None}, ignore=_V2_PROTOCOL_PARAMS)
    items = []
    for i, (element, prompt) in enumerate(zip(images, prompts, strict=True)):
        field = f"image[{i}]"
        data = element if isinstance(element, bytes) else decode_base64(element, field, settings.max_body_bytes)
        element_options = options if prompt is None else parse_options({**params, "prompt": prompt},
                                                                       ignore=_V2_PROTOCOL_PARAMS)
        items.append((data, field, element_options, None))
    return ParsedRequest(resolver.documents(items), "v2", v2_request=request)


def _v2_parameters(request: InferRequest) -> dict[str, Any]:
    params = request.parameters or {}
    params = to_http_parameters(params) if request.from_grpc else dict(params)
    return {k: v for k, v in params.items() if k not in _V2_PROTOCOL_PARAMS}


def _bytes_elements(inp: Any, name: str) -> list[Any]:
    if inp.datatype != "BYTES":
        raise InvalidRequest(f"input '{name}' must have datatype BYTES, got {inp.datatype}", param=name)
    data = _raw_elements(inp, name) if getattr(inp, "_raw_data", None) is not None else inp.data
    if data is None:
        raise InvalidRequest(f"input '{name}' has no data", param=name)
    if isinstance(data, np.ndarray):
        data = data.ravel().tolist()
    if not isinstance(data, list) or not all(isinstance(x, str | bytes) for x in data):
        raise InvalidRequest(f"input '{name}' must be a list of strings", param=name)
    _check_shape(inp.shape, len(data), name)
    return data


def _raw_elements(inp: Any, name: str) -> Any:
    """gRPC ``raw_input_contents``: each element is a 4-byte little-endian length, then that many bytes."""
    try:
        return inp.as_numpy()
    except (ValueError, TypeError, struct.error) as exc:
        raise InvalidRequest(f"input '{name}': raw_input_contents is not a sequence of length-prefixed elements "
                             "matching the shape (each element: 4-byte little-endian length, then the bytes)",
                             param=name) from exc


def _check_shape(shape: Any, count: int, name: str) -> None:
    """The declared shape must hold exactly the elements sent (the protocol says so; a mismatch is a bug)."""
    dims = list(shape or [])
    if not dims or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in dims):
        raise InvalidRequest(f"input '{name}' has shape {dims}; give non-negative sizes, e.g. [{count}]",
                             param=name)
    if math.prod(dims) != count:
        raise InvalidRequest(f"input '{name}' declares shape {dims} ({math.prod(dims)} elements) but has {count}",
                             param=name)


def _text(value: str | bytes, name: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"input '{name}' is not UTF-8 text", param=name) from exc
    return value


def v2_response(parsed: ParsedRequest, outputs: list[OcrOutput], model_name: str) -> InferResponse:
    request = parsed.v2_request
    n = len(outputs)

    def bytes_output(name: str, values: list[str]) -> InferOutput:
        out = InferOutput(name=name, shape=[n], datatype="BYTES")
        out.set_data_from_numpy(np.array(values, dtype=object), binary_data=False)
        return out

    infer_outputs = [
        bytes_output("text", [o.text for o in outputs]),
        bytes_output("finish_reason", [o.finish_reason for o in outputs]),
        bytes_output("blocks", [json.dumps(o.blocks) for o in outputs]),
    ]
    usage = InferOutput(name="usage", shape=[n, 3], datatype="INT64")
    usage.set_data_from_numpy(np.array([[o.prompt_tokens, o.completion_tokens, o.image_tokens] for o in outputs],
                                       dtype=np.int64), binary_data=False)
    infer_outputs.append(usage)
    if any(o.rendered_png for o in outputs):
        infer_outputs.append(bytes_output("rendered_png", [o.rendered_png or "" for o in outputs]))
    # kserve's response serialisation fails (500) on a missing id when the client sent none: always set one
    response_id = (request.id if request is not None and request.id else None) or generate_uuid()
    return InferResponse(response_id=response_id, model_name=model_name, infer_outputs=infer_outputs,
                         from_grpc=bool(request is not None and request.from_grpc))


V2_INPUTS = [
    {"name": "image", "datatype": "BYTES", "shape": [-1],
     "parameters": {"content": "base64 image (REST) or raw image bytes (gRPC bytes_contents)"}},
    {"name": "prompt", "datatype": "BYTES", "shape": [-1], "parameters": {"optional": True}},
]
V2_OUTPUTS = [
    {"name": "text", "datatype": "BYTES", "shape": [-1]},
    {"name": "finish_reason", "datatype": "BYTES", "shape": [-1]},
    {"name": "blocks", "datatype": "BYTES", "shape": [-1], "parameters": {"content": "JSON list of boxes"}},
    {"name": "usage", "datatype": "INT64", "shape": [-1, 3],
     "parameters": {"columns": "prompt_tokens, completion_tokens, image_tokens"}},
]
