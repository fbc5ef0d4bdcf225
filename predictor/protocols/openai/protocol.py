"""OpenAI chat request parsing and response building (``openai.types.chat`` models) for OCR.

The last user message carries the work: its image parts are OCR'd (``<image>`` first, as DeepSeek-OCR needs)
with its text as the prompt. Earlier turns and system messages do not change the OCR prompt.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.chat.chat_completion_message import ChatCompletionMessage
from openai.types.completion_usage import CompletionUsage

from predictor.errors import InvalidRequest
from predictor.ocr.options import ALIASES, OPTION_NAMES, OcrOptions, merge, parse_options
from predictor.ocr.service import figure_fields
from predictor.ocr.types import OcrOutput
from predictor.protocols.openai import vllm

_REFUSED = {  # parameters we cannot honour: refuse rather than silently ignore
    "tools": "tools are not supported by this OCR model",
    "functions": "functions are not supported by this OCR model",
    "tool_choice": "tools are not supported by this OCR model",
    "function_call": "functions are not supported by this OCR model",
    "audio": "audio output is not supported",
}
_GENERATION_KEYS = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop",
                    "min_tokens", "ignore_eos")


@dataclass
class ChatRequest:
    model: str
    images: list[str]  # image_url / file data (data URL, bare base64, or http(s) URL); a PDF adds its pages
    options: OcrOptions
    stream: bool = False
    include_usage: bool = False
    request_id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def parse_chat_request(body: Any, max_images: int) -> ChatRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object", param=None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required and must be a string", param="model")
    _refuse_unsupported(body)
    images, text = _last_user_message(body.get("messages"), max_images)
    options = _options(body, text)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise InvalidRequest("stream_options must be an object", param="stream_options")
    include_usage = stream_options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise InvalidRequest("stream_options.include_usage must be a boolean", param="stream_options.include_usage")
    return ChatRequest(model=model, images=images, options=options, stream=stream, include_usage=include_usage)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n", 1)
    if n is not None and n != 1:
        raise InvalidRequest("only n=1 is supported", param="n")
    for key, message in _REFUSED.items():
        if body.get(key):
            raise InvalidRequest(message, param=key)
    if body.get("logprobs") or body.get("top_logprobs"):
        raise InvalidRequest("logprobs are not supported", param="logprobs")
    modalities = body.get("modalities")
    if isinstance(modalities, list) and "audio" in modalities:
        raise InvalidRequest("audio output is not supported", param="modalities")
    vllm.refuse_unhonoured(body)


def _options(body: dict[str, Any], text: str) -> OcrOptions:
    # OCR options arrive at the top level (the openai client merges extra_body there) where unknown keys are
    # ignored as OpenAI does, or as an explicit object ("extra_body" / "ocr") where unknown keys are refused.
    top = {k: body[k] for k in (*OPTION_NAMES, *_GENERATION_KEYS) if k in body and k != "prompt"}
    base = parse_options(top)
    from_vllm = vllm.vllm_options(body)  # vLLM's spellings of raw output and of the repetition guard
    base = merge(base, parse_options(from_vllm), set(from_vllm))
    for key in ("extra_body", "ocr"):
        nested = body.get(key)
        if nested is None:
            continue
        if not isinstance(nested, dict):
            raise InvalidRequest(f"{key} must be an object", param=key)
        try:
            extra = parse_options(nested)
        except InvalidRequest as exc:
            raise InvalidRequest(exc.message, param=f"{key}.{exc.param}") from exc
        base = merge(base, extra, {ALIASES.get(k, k) for k in nested})
    if base.prompt is None and base.task is None and text:
        base = merge(base, OcrOptions(prompt=text), {"prompt"})
    return base


def _last_user_message(messages: Any, max_images: int) -> tuple[list[str], str]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"messages[{i}] must be an object with a role", param=f"messages[{i}]")
    index = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if index is None:
        raise InvalidRequest("messages has no user message", param="messages")
    content = messages[index].get("content")
    where = f"messages[{index}].content"
    if isinstance(content, str):
        parts: list[Any] = [{"type": "text", "text": content}]
    elif isinstance(content, list):
        parts = content
    else:
        raise InvalidRequest(f"{where} must be a string or a list of parts", param=where)
    images, texts = [], []
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            images.append(_image_url(part.get("image_url"), f"{where}[{j}].image_url"))
        elif kind == "file":
            images.append(_file_data(part.get("file"), f"{where}[{j}].file"))
        elif kind in ("input_audio", "audio", "input_file"):
            raise InvalidRequest(f"{kind} parts are not supported", param=f"{where}[{j}].type")
        else:
            raise InvalidRequest(f"{where}[{j}] must be a text or image_url part", param=f"{where}[{j}]")
    text = "\n".join(t.strip() for t in texts if t.strip())
    if not images:
        message = "the request has no image and no text" if not text else "at least one image_url part is required"
        raise InvalidRequest(message, param="messages")
    if len(images) > max_images:
        raise InvalidRequest(f"{len(images)} images exceed the limit of {max_images} per request", param="messages")
    return images, text


def _file_data(value: Any, where: str) -> str:
    """OpenAI's file part: inline ``file_data`` (a PDF or image data URL) only; uploaded file ids do not exist here."""
    data = value.get("file_data") if isinstance(value, dict) else None
    if not isinstance(data, str) or not data.strip():
        raise InvalidRequest(f"{where}.file_data must be a data URL (file_id uploads are not supported)",
                             param=f"{where}.file_data")
    return data.strip()


def _image_url(value: Any, where: str) -> str:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest(f"{where}.url must be a non-empty string", param=f"{where}.url")
    return url.strip()


# ---- responses ------------------------------------------------------------------------------------------------


def _usage(output: OcrOutput) -> CompletionUsage:
    return CompletionUsage(prompt_tokens=output.prompt_tokens, completion_tokens=output.completion_tokens,
                           total_tokens=output.prompt_tokens + output.completion_tokens)


def ocr_extra(output: OcrOutput) -> dict[str, Any]:
    """Structured results beside the text: per page its blocks, raw text and rendered picture if asked, and all
    blocks together (each with its ``page`` when there are several pages)."""
    pages = []
    for o in output.page_outputs:
        page: dict[str, Any] = {**o.page, "blocks": o.blocks, "finish_reason": o.finish_reason,
                                "image_tokens": o.image_tokens, "raw_text": o.raw_text}
        if o.rendered_png is not None:
            page["rendered_png"] = o.rendered_png
        page.update(figure_fields(o))
        pages.append(page)
    return {"pages": pages, "blocks": output.blocks}


def completion(req: ChatRequest, model: str, output: OcrOutput) -> dict[str, Any]:
    result = ChatCompletion(
        id=req.request_id, created=req.created, model=model, object="chat.completion",
        choices=[Choice(index=0, finish_reason=output.finish_reason,  # type: ignore[arg-type]
                        message=ChatCompletionMessage(role="assistant", content=output.text))],
        usage=_usage(output),
    )
    body = result.model_dump(exclude_none=True)
    body["ocr"] = ocr_extra(output)
    return body


def chunk(req: ChatRequest, model: str, *, content: str | None = None, role: bool = False,
          finish: str | None = None, usage: OcrOutput | None = None, ocr: OcrOutput | None = None) -> str:
    """One SSE frame; ``ocr``: the finished output, whose structured results (figures) ride on this chunk."""
    if usage is not None:
        choices: list[ChunkChoice] = []
    else:
        delta = ChoiceDelta(role="assistant" if role else None, content=content)
        choices = [ChunkChoice(index=0, delta=delta, finish_reason=finish)]  # type: ignore[arg-type]
    obj = ChatCompletionChunk(id=req.request_id, created=req.created, model=model, object="chat.completion.chunk",
                              choices=choices, usage=_usage(usage) if usage is not None else None)
    if ocr is not None:
        return f"data: {json.dumps({**obj.model_dump(exclude_none=True), 'ocr': ocr_extra(ocr)})}\n\n"
    return f"data: {obj.model_dump_json(exclude_none=True)}\n\n"
