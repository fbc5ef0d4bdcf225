"""KServe v1 and v2 (Open Inference Protocol) request parsing and response building.

v1: ``{"instances": [{"image": <base64 or data URL>, "prompt": ..., <options>}]}`` or a raw image body.
v2: a BYTES input ``image`` (base64 strings in JSON; raw bytes over gRPC and in REST's binary tensor extension,
read in ``rest_body.py``), an optional BYTES ``prompt`` and options as parameters.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from kserve.protocol.infer_type import RequestedOutput, to_http_parameters
from kserve.utils.utils import generate_uuid

from predictor.errors import InvalidRequest, PayloadTooLarge
from predictor.ocr.documents import decode_base64
from predictor.ocr.options import OcrOptions, parse_options
from predictor.ocr.resolve import Resolver, prefixed
from predictor.ocr.service import figure_fields
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
    prediction: dict[str, Any] = {**output.page, "text": output.text, "finish_reason": output.finish_reason,
                                  "usage": output.usage, "blocks": output.blocks}
    if not output.pages:
        prediction["raw_text"] = output.raw_text  # per page: the text with DeepSeek's grounding tags
    if output.rendered_png is not None:
        prediction["rendered_png"] = output.rendered_png
    prediction.update(figure_fields(output))
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
    _check_requested_outputs(request)
    params = _v2_parameters(request)
    options = parse_options({**params, "prompt": None}, ignore=_V2_PROTOCOL_PARAMS)
    items = []
    for i, (element, prompt) in enumerate(zip(images, prompts, strict=True)):
        field = f"image[{i}]"
        data = _image_bytes(element, field, settings.max_body_bytes)
        element_options = options if prompt is None else parse_options({**params, "prompt": prompt},
                                                                       ignore=_V2_PROTOCOL_PARAMS)
        items.append((data, field, element_options, None))
    return ParsedRequest(resolver.documents(items), "v2", v2_request=request)


_BASE64_TEXT = re.compile(rb"(data:[^,]{0,200},)?[A-Za-z0-9+/=\r\n]+")


def _image_bytes(element: str | bytes, field: str, limit: int) -> bytes:
    """An element is an image's bytes, or its base64 text (a data URL too): the same over JSON, gRPC and REST's
    binary extension. Raw image bytes never match the base64 alphabet (every format starts with a byte outside it)."""
    if isinstance(element, bytes):
        if not _BASE64_TEXT.fullmatch(element):
            return element
        element = element.decode("ascii")
    return decode_base64(element, field, limit)


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
    """gRPC ``raw_input_contents`` or REST binary data: each element is a 4-byte little-endian length, then that
    many bytes."""
    try:
        return inp.as_numpy()
    except (ValueError, TypeError, struct.error) as exc:
        raise InvalidRequest(f"input '{name}': its binary data is not a sequence of length-prefixed elements "
                             "matching the shape (each element: 4-byte little-endian length, then the bytes)",
                             param=name) from exc


def _check_requested_outputs(request: InferRequest) -> None:
    names = {o["name"] for o in V2_OUTPUTS} | {"rendered_png"}
    for output in request.request_outputs or []:
        if output.name not in names:
            raise InvalidRequest(f"unknown output {output.name[:64]!r}; outputs: {', '.join(sorted(names))}",
                                 param="outputs")


def _requested_outputs(request: InferRequest, present: set[str]) -> list[RequestedOutput] | None:
    """The outputs asked for, each binary when it says so, else as ``binary_data_output`` says (Triton's rule;
    kserve alone would send every requested output without ``binary_data`` as JSON)."""
    if not request.request_outputs:
        return None
    default = bool(request.use_binary_outputs)
    chosen = []
    for output in request.request_outputs:
        if output.name not in present:
            continue  # rendered_png when nothing was rendered
        parameters = dict(output.parameters or {})
        parameters.setdefault("binary_data", default)
        chosen.append(RequestedOutput(output.name, parameters))
    return chosen


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


def all_figures(output: OcrOutput) -> dict[str, list[dict[str, Any]]]:
    """Every page's crops and skipped boxes, each with its page number (v2 has one JSON element per image)."""
    return {key: [{**item, "page": page.page.get("page", 1)}
                  for page in output.page_outputs for item in getattr(page, key) or []]
            for key in ("figures", "figures_skipped")}


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
    if any(p.figures is not None for o in outputs for p in o.page_outputs):
        infer_outputs.append(bytes_output("figures", [json.dumps(all_figures(o)) for o in outputs]))
    infer_outputs.append(bytes_output("pages", [json.dumps([p.page for p in o.page_outputs]) for o in outputs]))
    # kserve's response serialisation fails (500) on a missing id when the client sent none: always set one
    response_id = (request.id if request is not None and request.id else None) or generate_uuid()
    from_grpc = bool(request is not None and request.from_grpc)
    binary, requested = False, None
    if request is not None:  # gRPC: raw outputs when the inputs came raw (tritonclient reads nothing else)
        binary = bool(request.use_binary_outputs)
        requested = None if from_grpc else _requested_outputs(request, {o.name for o in infer_outputs})
    return InferResponse(response_id=response_id, model_name=model_name, infer_outputs=infer_outputs,
                         from_grpc=from_grpc, use_binary_outputs=binary, requested_outputs=requested)


# Model metadata, identical over REST and gRPC: gRPC's TensorMetadata has no ``parameters`` field (a metadata
# call that put one there failed in every gRPC client), so what each tensor holds is written in the README:
# image = base64 in JSON, raw bytes in gRPC and REST's binary extension; blocks = a JSON list of boxes per image;
# usage = prompt_tokens, completion_tokens, image_tokens per image (README, "Protocols").
V2_INPUTS = [
    {"name": "image", "datatype": "BYTES", "shape": [-1]},
    {"name": "prompt", "datatype": "BYTES", "shape": [-1]},
]
V2_OUTPUTS = [
    {"name": "text", "datatype": "BYTES", "shape": [-1]},
    {"name": "finish_reason", "datatype": "BYTES", "shape": [-1]},
    {"name": "blocks", "datatype": "BYTES", "shape": [-1]},
    {"name": "usage", "datatype": "INT64", "shape": [-1, 3]},
    {"name": "pages", "datatype": "BYTES", "shape": [-1]},
    {"name": "figures", "datatype": "BYTES", "shape": [-1]},
]
