"""One running row on the host: its generated ids, stop conditions, streamed text and final result.

Only rows that stream or have stop strings detokenize as they go; the others decode their ids once, at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from predictor.engine import metrics
from predictor.engine.detokenizer import IncrementalDetokenizer
from predictor.engine.sampler import Picked, RowSampler
from predictor.engine.types import Delta, GenerationRequest, GenerationResult


@dataclass
class Row:
    request: GenerationRequest
    sampler: RowSampler
    detok: IncrementalDetokenizer | None
    position: int  # position id of the next token to feed
    seq: int  # join order: the newest rows are evicted first when memory runs out
    columns: int = 0  # cache columns this row may reach (its padded prompt plus its cap)
    generated: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    emitted: int = 0  # characters of the streamed text already sent
    finish_reason: str | None = None
    text: str = ""
    logprobs: list[float] = field(default_factory=list)  # of each generated token (confidence, logprobs)
    top: list[list[tuple[int, float]]] | None = None  # per generated token, when the request asked for them


def new_row(request: GenerationRequest, sampler: RowSampler, tokenizer: Any, eos: int, seq: int) -> Row:
    incremental = request.stream or bool(request.params.stop)
    detok = IncrementalDetokenizer(tokenizer, frozenset({eos})) if incremental else None
    row = Row(request, sampler, detok, position=request.prepared.prompt_tokens, seq=seq)
    if request.params.top_logprobs:
        row.top = []
    return row


def accept(row: Row, picked: Picked, eos: int, max_context: int) -> bool:
    """Record one chosen token; True when the row is finished."""
    token = picked.token
    if row.first_token_at is None:
        row.first_token_at = time.monotonic()
        metrics.TTFT.observe(row.first_token_at - row.request.created)
    params = row.request.params
    if token == eos and not params.ignore_eos:
        row.finish_reason = "stop"
        return True
    row.generated.append(token)
    row.logprobs.append(picked.logprob)
    if row.top is not None:
        row.top.append(picked.top or [])
    if row.detok is not None:
        row.detok.add(token)
        if params.stop and _hit_stop(row):
            return True
    if len(row.generated) >= params.max_new_tokens or row.position + 1 >= max_context:
        row.finish_reason = "length"
        return True
    if row.request.stream:
        emit_pending(row)
    return False


def _hit_stop(row: Row) -> bool:
    assert row.detok is not None
    text = row.detok.text
    # only the tail can hold a stop string that was not complete at the previous step
    tail_start = max(0, len(text) - max(len(s) for s in row.request.params.stop) - 16)
    hits = [i for s in row.request.params.stop if (i := text.find(s, tail_start)) >= 0]
    if not hits:
        return False
    row.detok.text = text[:min(hits)]
    row.finish_reason = "stop"
    return True


def emit_pending(row: Row, final: bool = False) -> None:
    """Stream what is safe to show: with stop strings, hold back a tail that could start one."""
    if not row.request.stream or row.detok is None:
        return
    text = row.detok.text
    limit = len(text)
    if not final and row.request.params.stop:
        limit -= max(len(s) for s in row.request.params.stop) - 1
    if limit > row.emitted:
        row.request.emit(Delta(text[row.emitted:limit]))
        row.emitted = limit


def finish(row: Row, tokenizer: Any) -> None:
    """Send the row's result (and the last streamed text)."""
    request = row.request
    if row.detok is None:
        text = tokenizer.decode(row.generated, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    else:
        if row.finish_reason != "stop" or not request.params.stop:
            row.detok.flush()
        emit_pending(row, final=True)
        text = row.detok.text
    now = time.monotonic()
    n = len(row.generated)
    if n > 1 and row.first_token_at is not None:
        metrics.TPOT.observe((now - row.first_token_at) / (n - 1))
    metrics.E2E.observe(now - request.created)
    metrics.FINISHED.labels(reason=row.finish_reason or "stop").inc()
    request.emit(GenerationResult(
        text=text, token_ids=list(row.generated), finish_reason=row.finish_reason or "stop",
        prompt_tokens=request.prepared.prompt_tokens, completion_tokens=n,
        image_tokens=request.prepared.image_tokens, first_token_at=row.first_token_at,
        logprobs=row.logprobs, top_logprobs=row.top, ban_steps=row.sampler.ban_steps,
    ))
