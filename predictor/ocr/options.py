"""Per-request OCR and generation options, with the same names in every protocol.

OpenAI requests carry them at the top level or in ``extra_body``; KServe v1 in each instance; KServe v2 as
request parameters. Every bad value is a 400 naming the option.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from predictor.constants import MAX_NGRAM_SIZE, MAX_NGRAM_WINDOW
from predictor.errors import InvalidRequest
from predictor.ocr.pages import PageRanges, parse_dpi, parse_pages
from predictor.ocr.tasks import check_text


@dataclass(frozen=True)
class OcrOptions:
    task: str | None = None
    prompt: str | None = None
    ref: str | None = None
    mode: str | None = None
    max_crops: int | None = None
    ngram_size: int | None = None
    ngram_window: int | None = None
    ngram_whitelist: tuple[int, ...] | None = None  # ids the guard never bans (None: the family's table tags)
    raw: bool = False
    render: bool = False
    max_tokens: int | None = None
    min_tokens: int = 0
    ignore_eos: bool = False
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    figures: bool = False  # crop image blocks, link them in the text (predictor.ocr.figures)
    math: str = "latex"  # "dollar": model math delimiters become $ and $$ (predictor.ocr.markdown)
    table_format: str = "html"  # "markdown": rectangular HTML tables -> GFM pipe tables
    pages: PageRanges | None = None  # PDF pages to OCR, 1-based (predictor.ocr.pages)
    dpi: int | None = None  # PDF render resolution, 72..300 (default 144)


OPTION_NAMES = frozenset(f.name for f in fields(OcrOptions))
# Accepted spellings: vLLM's min_tokens and OpenAI's max_completion_tokens / max_new_tokens.
ALIASES = {"max_completion_tokens": "max_tokens", "max_new_tokens": "max_tokens", "min_new_tokens": "min_tokens"}


def _int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidRequest(f"{name} must be an integer, got {type(value).__name__}", param=name)
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise InvalidRequest(f"{name} must be {bounds}, got {value}", param=name)
    return value


def _float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number, got {type(value).__name__}", param=name)
    if not (low <= float(value) <= high):
        raise InvalidRequest(f"{name} must be between {low} and {high}, got {value}", param=name)
    return float(value)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidRequest(f"{name} must be a boolean, got {type(value).__name__}", param=name)


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string, got {type(value).__name__}", param=name)
    return check_text(value, name)


MAX_STOP = 4  # OpenAI's own limit
MAX_STOP_CHARS = 256  # a stop string is held back from a stream until it cannot match: keep that bounded


def _choice(name: str, value: Any, accepted: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in accepted:
        shown = value if isinstance(value, str) and len(value) <= 20 else type(value).__name__
        raise InvalidRequest(f"{name} must be one of {', '.join(accepted)}, got {shown!r}", param=name)
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items) or len(items) > MAX_STOP:
        raise InvalidRequest(f"stop must be a non-empty string or a list of at most {MAX_STOP} non-empty strings",
                             param="stop")
    if any(len(s) > MAX_STOP_CHARS for s in items):
        raise InvalidRequest(f"each stop string must be at most {MAX_STOP_CHARS} characters", param="stop")
    return tuple(check_text(s, "stop") for s in items)


MAX_WHITELIST = 256


def _token_ids(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_WHITELIST:
        raise InvalidRequest(f"{name} must be a list of at most {MAX_WHITELIST} token ids", param=name)
    return tuple(_int(name, v, 0) for v in value)


_PARSERS = {
    "task": _str, "prompt": _str, "ref": _str, "mode": _str,
    "max_crops": lambda n, v: _int(n, v, 1),  # the upper bound is the family's
    "ngram_size": lambda n, v: _int(n, v, 0, MAX_NGRAM_SIZE),
    "ngram_window": lambda n, v: _int(n, v, 1, MAX_NGRAM_WINDOW),
    "ngram_whitelist": _token_ids,
    "raw": _bool, "render": _bool, "ignore_eos": _bool,
    "max_tokens": lambda n, v: _int(n, v, 1),
    "min_tokens": lambda n, v: _int(n, v, 0),
    "temperature": lambda n, v: _float(n, v, 0.0, 2.0),
    "top_p": lambda n, v: _float(n, v, 0.0, 1.0),
    "seed": lambda n, v: _int(n, v, 0, 2**63 - 1),
    "stop": lambda n, v: _stop(v),
    "figures": _bool,
    "math": lambda n, v: _choice(n, v, ("latex", "dollar")),
    "table_format": lambda n, v: _choice(n, v, ("html", "markdown")),
    "pages": lambda n, v: parse_pages(v, n),
    "dpi": lambda n, v: parse_dpi(v, n),
}


def parse_options(values: dict[str, Any], *, strict: bool = True, ignore: frozenset[str] = frozenset()) -> OcrOptions:
    """Build options from a mapping. ``strict`` rejects unknown keys (apart from ``ignore``) with a 400."""
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        name = ALIASES.get(key, key)
        if name not in OPTION_NAMES:
            if strict and key not in ignore:
                raise InvalidRequest(f"unknown option {key!r}; accepted: {', '.join(sorted(OPTION_NAMES))}",
                                     param=key)
            continue
        if value is None:
            continue
        parsed[name] = _PARSERS[name](key, value)
    options = OcrOptions(**parsed)
    if options.ngram_size and options.ngram_window is not None and options.ngram_window < options.ngram_size:
        raise InvalidRequest("ngram_window must be at least ngram_size", param="ngram_window")
    if options.max_tokens is not None and options.min_tokens > options.max_tokens:
        raise InvalidRequest("min_tokens must not exceed max_tokens", param="min_tokens")
    return options


def merge(base: OcrOptions, override: OcrOptions, explicit: set[str]) -> OcrOptions:
    """``override``'s explicitly given fields win over ``base``."""
    values = {f.name: getattr(override if f.name in explicit else base, f.name) for f in fields(OcrOptions)}
    return OcrOptions(**values)
