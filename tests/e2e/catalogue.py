"""The bad-input catalogue: hostile and careless requests over the four protocols (OpenAI, KServe v1, v2 REST,
v2 gRPC). Each must be answered with a 4xx that names the field at fault, and the server must serve a good
request afterwards. The soak suite runs all of it; CI runs a sample (tests/e2e/test_catalogue.py).

Servers under test run with the defaults except ``--max_images_per_request 8`` and ``--max_instances 16``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.builders import b64, chat_body, data_url, image_part, png, v2_body, v2_input
from tests.conftest import blank_pdf

MODEL = "deepseek-ocr"
CHAT, V1, V2 = "/v1/chat/completions", f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer"


OK = b64(png())
DAMAGED = b64(png()[:40])


@dataclass
class Case:
    protocol: str  # "openai" | "v1" | "v2" | "grpc"
    name: str
    request: Callable[[], Any]  # HTTP: (path, body str|bytes, headers); gRPC: a pb.ModelInferRequest
    field: str  # must appear in the error's param or message
    status: int = 400


def _chat(parts: list[dict] | None = None, **extra: Any) -> dict:
    return chat_body(*(parts if parts is not None else [_url(OK)]), **{"max_tokens": 2, **extra})


def _url(data: str, mime: str = "image/png") -> dict:
    return image_part(data_url(data, mime))


def _http(path: str, body: Any, content_type: str = "application/json") -> Callable[[], Any]:
    def build() -> tuple[str, bytes, dict[str, str]]:
        raw = body() if callable(body) else body
        data = raw if isinstance(raw, bytes) else (raw if isinstance(raw, str) else json.dumps(raw)).encode(
            "utf-8", "surrogatepass")
        return path, data, {"Content-Type": content_type}

    return build


def _openai(name: str, body: Any, field: str, status: int = 400) -> Case:
    return Case("openai", name, _http(CHAT, body), field, status)


def _v1(name: str, body: Any, field: str, status: int = 400, content_type: str = "application/json") -> Case:
    return Case("v1", name, _http(V1, body, content_type), field, status)


def _v2_body(inputs: list[dict], **params: Any) -> dict:
    return v2_body(*inputs, **params)


def _image_input(data: list[str], shape: list[int] | None = None, datatype: str = "BYTES") -> dict:
    return v2_input(data, shape, datatype)


def _v2(name: str, body: Any, field: str) -> Case:
    return Case("v2", name, _http(V2, body), field)


def _grpc_request(shape: list[int], contents: list[bytes] | None = None, raw: list[bytes] | None = None,
                  datatype: str = "BYTES", name: str = "image", **params: Any) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)
    if contents is not None:
        tensor.contents.bytes_contents.extend(contents)
    request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor])
    for key, value in params.items():
        request.parameters[key].int64_param = value
    if raw is not None:
        request.raw_input_contents.extend(raw)
    return request


def _grpc(name: str, build: Callable[[], pb.ModelInferRequest], field: str) -> Case:
    return Case("grpc", name, build, field)


def _openai_cases() -> list[Case]:
    nested = "[" * 10000 + "]" * 10000
    return [
        _openai("not JSON", "{not json", "body"),
        _openai("deeply nested JSON", nested, "body"),
        _openai("body is a list", [], "body"),
        _openai("model missing", {"messages": _chat()["messages"]}, "model"),
        _openai("model not a string", _chat(model=7), "model"),
        _openai("unknown model", _chat(model="gpt-4o"), "model", 404),
        _openai("messages missing", {"model": MODEL}, "messages"),
        _openai("messages empty", {"model": MODEL, "messages": []}, "messages"),
        _openai("message not an object", {"model": MODEL, "messages": ["hi"]}, "messages[0]"),
        _openai("no user message", {"model": MODEL, "messages": [{"role": "system", "content": "x"}]}, "messages"),
        _openai("content is a number", {"model": MODEL, "messages": [{"role": "user", "content": 3}]},
                "messages[0].content"),
        _openai("unknown part type", _chat([{"type": "video", "video": {}}]), "messages[0].content[0]"),
        _openai("audio part", _chat([{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]),
                "messages[0].content[0].type"),
        _openai("image_url without url", _chat([{"type": "image_url", "image_url": {}}]), "url"),
        _openai("image not base64", _chat([_url("%%%not-base64")]), "image_url[0]"),
        _openai("damaged image", _chat([_url(DAMAGED)]), "image_url[0]"),
        _openai("remote image while remote images are off", _chat([{"type": "image_url", "image_url": {
            "url": "http://169.254.169.254/latest/meta-data"}}]), "image_url[0]"),
        _openai("nine images", _chat([_url(OK)] * 9), "messages"),
        _openai("file part with a file id", _chat([{"type": "file", "file": {"file_id": "file-1"}}]), "file_data"),
        _openai("n=2", _chat(n=2), "n"),
        _openai("tools", _chat(tools=[{"type": "function", "function": {"name": "f"}}]), "tools"),
        _openai("logprobs", _chat(logprobs=True), "logprobs"),
        _openai("stream not a boolean", _chat(stream="yes"), "stream"),
        _openai("stream_options not an object", _chat(stream=True, stream_options="yes"), "stream_options"),
        _openai("negative max_tokens", _chat(max_tokens=-1), "max_tokens"),
        _openai("max_tokens a string", _chat(max_tokens="many"), "max_tokens"),
        _openai("temperature 5", _chat(temperature=5), "temperature"),
        _openai("top_p 2", _chat(top_p=2), "top_p"),
        _openai("negative seed", _chat(seed=-1), "seed"),
        _openai("five stop strings", _chat(stop=["a", "b", "c", "d", "e"]), "stop"),
        _openai("100k-character stop string", _chat(stop="x" * 100_000), "stop"),
        _openai("min_tokens over max_tokens", _chat(max_tokens=2, min_tokens=5), "min_tokens"),
        _openai("ngram_window under ngram_size", _chat(ngram_size=10, ngram_window=5), "ngram_window"),
        _openai("unknown option in extra_body", _chat(extra_body={"colour": "red"}), "extra_body.colour"),
        _openai("unknown mode", _chat(mode="gigantic"), "mode"),
        _openai("unknown task", _chat(task="translate"), "task"),
        _openai("locate without ref", _chat(task="locate"), "ref"),
        _openai("lone surrogate in the prompt", _chat([_url(OK), {"type": "text", "text": "\ud800"}]), "prompt"),
        _openai("nested image placeholder", _chat([_url(OK), {"type": "text", "text": "<<image>image>"}]),
                "prompt"),
        _openai("5000-character prompt", _chat([_url(OK), {"type": "text", "text": "x" * 5000}]), "prompt"),
        _openai("50000x1 image", lambda: _chat([_url(b64(png((50000, 1))))]), "image_url[0]"),
        _openai("broken PDF", _chat([_url(b64(b"%PDF-1.4 broken"), "application/pdf")]), "image_url[0]"),
        _openai("three 12-page PDFs (36 pages)", lambda: _chat([_url(b64(blank_pdf(12)), "application/pdf")] * 3),
                "image_url[2]"),
        _openai("eight huge-page PDFs over the pixel budget",
                lambda: _chat([_url(b64(blank_pdf(4, (14400, 14400))), "application/pdf")] * 8), "image_url"),
        _openai("body over the size limit", lambda: _chat([_url("A" * 40_000_000)]), "body", 413),
    ]


def _v1_cases() -> list[Case]:
    return [
        _v1("instances missing", {"inputs": []}, "instances"),
        _v1("instances empty", {"instances": []}, "instances"),
        _v1("17 instances", {"instances": [{"image": OK}] * 17}, "instances"),
        _v1("instance is a number", {"instances": [3]}, "instances[0]"),
        _v1("instance without image", {"instances": [{"prompt": "x"}]}, "instances[0].image"),
        _v1("image not base64", {"instances": [{"image": "%%%"}]}, "instances[0].image"),
        _v1("damaged image", {"instances": [{"image": DAMAGED}]}, "instances[0].image"),
        _v1("unknown option", {"instances": [{"image": OK, "colour": "red"}]}, "instances[0].colour"),
        _v1("max_tokens 0", {"instances": [{"image": OK, "max_tokens": 0}]}, "instances[0].max_tokens"),
        _v1("nested image placeholder", {"instances": [{"image": OK, "prompt": "<<image>image>"}]}, "prompt"),
        _v1("1x5000 image", lambda: {"instances": [{"image": b64(png((1, 5000)))}]}, "instances[0].image"),
        _v1("stream with two instances", {"instances": [{"image": OK}] * 2, "stream": True}, "stream"),
        _v1("JSON sent as a form", b'{"instances": []}', "body", content_type="application/x-www-form-urlencoded"),
        _v1("raw body that is no image", b"\x00\x01garbage", "body", content_type="image/png"),
        _v1("16 instances of a 32-page PDF", lambda: {"instances": [{"image": b64(blank_pdf(32))}] * 16},
            "instances[1].image"),
        _v1("PDF page with a 1000:1 aspect ratio", lambda: {"instances": [{"image": b64(blank_pdf(1, (14400, 14)))}]},
            "instances[0].image"),
    ]


def _v2_cases() -> list[Case]:
    return [
        _v2("image input missing", _v2_body([{"name": "prompt", "shape": [1], "datatype": "BYTES", "data": ["x"]}]),
            "image"),
        _v2("unknown input", _v2_body([_image_input([OK]), {"name": "colour", "shape": [1], "datatype": "BYTES",
                                                            "data": ["red"]}]), "colour"),
        _v2("image as FP32", _v2_body([_image_input([1.0], datatype="FP32")]), "image"),
        _v2("shape [3] with one element", _v2_body([_image_input([OK], shape=[3])]), "image"),
        _v2("shape [1] with two elements", _v2_body([_image_input([OK, OK], shape=[1])]), "image"),
        _v2("image not base64", _v2_body([_image_input(["%%%"])]), "image[0]"),
        _v2("unknown parameter", _v2_body([_image_input([OK])], colour="red"), "colour"),
        _v2("max_tokens parameter 0", _v2_body([_image_input([OK])], max_tokens=0), "max_tokens"),
        _v2("two prompts for three images", _v2_body([_image_input([OK] * 3), {
            "name": "prompt", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]), "prompt"),
    ]


def _v2_binary(name: str, elements: list[bytes], field: str, *, length: str | None = None,
               size: Any = None, tail: bytes = b"") -> Case:
    """The binary tensor extension, as tritonclient sends raw image bytes (issue 24, item 2)."""

    def build() -> tuple[str, bytes, dict[str, str]]:
        raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
        header = json.dumps({"inputs": [{"name": "image", "shape": [len(elements)], "datatype": "BYTES",
                                         "parameters": {"binary_data_size": len(raw) if size is None else size}}],
                             "parameters": {"max_tokens": 2}}).encode()
        return V2, header + raw + tail, {"Content-Type": "application/octet-stream",
                                         "Inference-Header-Content-Length": length or str(len(header))}

    return Case("v2", name, build, field)


def _v2_binary_cases() -> list[Case]:
    header = "inference-header-content-length"
    return [
        _v2_binary("binary: one undecodable byte", [b"\x89"], "image[0]"),
        _v2_binary("binary: damaged PNG", [png()[:40]], "image[0]"),
        _v2_binary("binary: header not a number", [png()], header, length="abc"),
        _v2_binary("binary: header negative", [png()], header, length="-5"),
        _v2_binary("binary: header past the body", [png()], header, length="100000000"),
        _v2_binary("binary: binary_data_size past the body", [png()], "binary_data_size", size=1_000_000_000),
        _v2_binary("binary: bytes after the inputs", [png()], header, tail=b"xx"),
    ]


def _grpc_cases() -> list[Case]:
    image = png()
    return [
        _grpc("empty raw contents", lambda: _grpc_request([1], raw=[b""]), "image"),
        _grpc("length prefix past the end", lambda: _grpc_request([1], raw=[struct.pack("<I", 999) + b"abc"]),
              "image"),
        _grpc("shape [5] with one element", lambda: _grpc_request([5], contents=[image]), "image"),
        _grpc("image as INT32", lambda: _grpc_request([1], datatype="INT32"), "image"),
        _grpc("damaged image bytes", lambda: _grpc_request([1], contents=[image[:40]]), "image[0]"),
        _grpc("unknown parameter", lambda: _grpc_request([1], contents=[image], colour=1), "colour"),
        _grpc("unknown input", lambda: _grpc_request([1], contents=[image], name="picture"), "picture"),
    ]


def catalogue() -> list[Case]:
    return [*_openai_cases(), *_v1_cases(), *_v2_cases(), *_v2_binary_cases(), *_grpc_cases()]


# ---- running a case ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int
    param: str | None
    message: str

    def names(self, field: str) -> bool:
        return field in (self.param or "") or field in self.message


_GRPC_STATUS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
                grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503,
                grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNKNOWN: 500}


def run_case(case: Case, url: str, grpc_target: str) -> Outcome:
    if case.protocol == "grpc":
        with grpc.insecure_channel(grpc_target) as channel:
            try:
                pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(case.request(), timeout=60)
            except grpc.RpcError as exc:
                return Outcome(_GRPC_STATUS.get(exc.code(), 599), None, exc.details() or "")
            return Outcome(200, None, "")
    path, body, headers = case.request()
    r = httpx.post(url + path, content=body, headers=headers, timeout=120)
    try:
        error = r.json().get("error")
    except ValueError:
        error = r.text
    if isinstance(error, dict):
        return Outcome(r.status_code, error.get("param"), str(error.get("message")))
    return Outcome(r.status_code, None, str(error))


def good_request(url: str) -> int:
    return httpx.post(url + CHAT, json=_chat(), timeout=120).status_code
