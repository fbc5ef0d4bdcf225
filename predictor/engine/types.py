"""Data passed between the asyncio side and the engine's worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from predictor.constants import IMAGE_NGRAM
from predictor.families.base import PreparedPrompt


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    min_new_tokens: int = 0
    ignore_eos: bool = False
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ngram_size: int = IMAGE_NGRAM[0]
    ngram_window: int = IMAGE_NGRAM[1]
    ngram_whitelist: tuple[int, ...] | None = None  # None: the family's whitelist (table tags)


@dataclass
class GenerationResult:
    text: str  # decoded with special tokens kept (grounding tags survive), end-of-sentence stripped
    token_ids: list[int]
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int
    image_tokens: int
    first_token_at: float | None = None  # time.monotonic() when the first token was sampled


@dataclass
class Delta:
    """New raw text for a streaming request (never splits a multi-byte character)."""

    text: str


@dataclass
class GenerationRequest:
    """One image + prompt to generate for. Created on the event loop, consumed by the worker thread."""

    prepared: PreparedPrompt
    params: SamplingParams
    stream: bool = False
    request_id: str = ""
    loop: asyncio.AbstractEventLoop | None = None
    events: asyncio.Queue[Any] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    created: float = field(default_factory=time.monotonic)
    deadline: float | None = None

    def emit(self, event: Any) -> None:
        """Hand an event (Delta, GenerationResult or an exception) back to the request's event loop."""
        if self.loop is None or self.events is None:
            return
        # A closed loop (server shutting down) means nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
