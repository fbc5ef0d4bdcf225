"""Request builders for the three protocols (OpenAI chat, KServe v1, KServe v2 REST), shared by every tier.

One small page (``PNG``, white, 64x64) unless a test brings its own image. Bodies are plain dicts: tests send them
with httpx or the ``openai`` package and change any field they probe.
"""

from __future__ import annotations

import base64
import io
from typing import Any

MODEL = "deepseek-ocr"
CHAT = "/v1/chat/completions"
V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, "white").save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PNG_B64 = b64(png())


def data_url(data: str | bytes = PNG_B64, mime: str = "image/png") -> str:
    """A data URL of ``data`` (base64 text, or raw bytes to encode)."""
    return f"data:{mime};base64,{b64(data) if isinstance(data, bytes) else data}"


def image_part(url: str | None = None) -> dict[str, Any]:
    """An OpenAI ``image_url`` content part (the small page when ``url`` is not given)."""
    return {"type": "image_url", "image_url": {"url": data_url() if url is None else url}}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def chat_body(*parts: dict[str, Any], model: str = MODEL, **fields: Any) -> dict[str, Any]:
    """An OpenAI chat request: one user message of ``parts`` (one image part of the small page when none)."""
    return {"model": model, "messages": [{"role": "user", "content": list(parts) or [image_part()]}], **fields}


def v1_body(*instances: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A KServe v1 ``:predict`` body (one instance of the small page when none)."""
    return {"instances": list(instances) or [{"image": PNG_B64}], **fields}


def v2_input(data: list[Any], shape: list[int] | None = None, datatype: str = "BYTES",
             name: str = "image") -> dict[str, Any]:
    return {"name": name, "shape": [len(data)] if shape is None else shape, "datatype": datatype, "data": data}


def v2_body(*inputs: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    """A KServe v2 ``/infer`` body (one image input of the small page when none), ``parameters`` when given."""
    body: dict[str, Any] = {"inputs": list(inputs) or [v2_input([PNG_B64])]}
    if parameters:
        body["parameters"] = parameters
    return body
