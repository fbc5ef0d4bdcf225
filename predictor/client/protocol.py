"""Request bodies and answers of the two protocols the client speaks: OpenAI chat and KServe v1.

Both carry one page per request and come back as the same :class:`PageResult`, so outputs do not depend on the
protocol. OCR options travel as top-level fields in OpenAI bodies (where the ``openai`` package puts
``extra_body``) and as instance fields in KServe v1.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any

from predictor.client.pages import PageImage
from predictor.constants import PDF_NGRAM

PROTOCOLS = ("openai", "v1")


class ProtocolError(Exception):
    """An answer that does not have the expected shape."""


@dataclass
class PageResult:
    text: str
    finish_reason: str
    usage: dict[str, int]
    blocks: list[dict[str, Any]] = field(default_factory=list)
    raw_text: str = ""
    figures: list[dict[str, Any]] = field(default_factory=list)  # as the server sent them (base64 "data")
    figures_skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For the JSON output: the crops without their bytes (they are files of their own)."""
        out = asdict(self)
        out["figures"] = [{k: v for k, v in f.items() if k != "data"} for f in self.figures]
        if not self.figures_skipped:
            del out["figures_skipped"]
        return out


@dataclass(frozen=True)
class Endpoint:
    protocol: str
    base_url: str  # scheme://host[:port][/prefix], without /v1 or /openai/v1
    model: str

    @property
    def path(self) -> str:
        if self.protocol == "openai":
            return f"{self.base_url}/v1/chat/completions"
        return f"{self.base_url}/v1/models/{self.model}:predict"

    @property
    def model_url(self) -> str:
        """Readiness of the model; the same route answers OpenAI and KServe v1 clients."""
        return f"{self.base_url}/v1/models/{self.model}"


def endpoint(url: str, protocol: str, model: str) -> Endpoint:
    """Accept a server root, or an OpenAI ``base_url`` ending in ``/v1`` or ``/openai/v1``."""
    base = url.rstrip("/")
    for suffix in ("/openai/v1", "/v1"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return Endpoint(protocol, base, model)


def options(task: str | None, mode: str | None, max_tokens: int | None, pdf: bool,
            **extra: Any) -> dict[str, Any]:
    """The OCR options of a page's request; ``extra`` (figures, math, table_format) are sent when not None."""
    chosen: dict[str, Any] = {"task": task, "mode": mode, "max_tokens": max_tokens, **extra}
    if pdf:
        chosen.update(ngram_size=PDF_NGRAM[0], ngram_window=PDF_NGRAM[1])  # as the server does for PDFs
    return {k: v for k, v in chosen.items() if v is not None}


def request_body(ep: Endpoint, page: PageImage, opts: dict[str, Any]) -> dict[str, Any]:
    encoded = base64.b64encode(page.data).decode("ascii")
    if ep.protocol == "openai":
        url = f"data:{page.mime};base64,{encoded}"
        return {"model": ep.model, **opts,
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    return {"instances": [{"image": encoded, **opts}]}


def parse_answer(protocol: str, body: Any) -> PageResult:
    try:
        if protocol == "openai":
            choice = body["choices"][0]
            usage = dict(body.get("usage") or {})
            page = ((body.get("ocr") or {}).get("pages") or [{}])[0]
            if "image_tokens" in page:
                usage["image_tokens"] = page["image_tokens"]
            return PageResult(choice["message"]["content"] or "", choice.get("finish_reason") or "stop",
                              usage, list(page.get("blocks") or []), page.get("raw_text") or "",
                              list(page.get("figures") or []), list(page.get("figures_skipped") or []))
        prediction = body["predictions"][0]
        return PageResult(prediction["text"], prediction.get("finish_reason") or "stop",
                          dict(prediction.get("usage") or {}), list(prediction.get("blocks") or []),
                          prediction.get("raw_text") or "", list(prediction.get("figures") or []),
                          list(prediction.get("figures_skipped") or []))
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"unexpected answer from the server ({type(exc).__name__}: {exc})") from exc


def error_message(body: Any, fallback: str) -> str:
    """The server's own message: OpenAI's ``{"error": {"message"}}`` or KServe's ``{"error": "..."}``."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    return fallback
