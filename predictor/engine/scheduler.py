"""Which waiting request is prefilled next: the waiting queue, admission within the KV budget, and dropping
requests that were cancelled or ran out of time. Pure Python (no torch): tested without a model.

Admission moves requests from the waiting queue into prefill while the padded cache stays within the budget. The
cache holds rows x longest row (every row is padded to the longest), so that product, not the sum of the rows'
lengths, is what must fit in ``max_batch_tokens``. A lone request is always admitted.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from predictor.engine.config import EngineConfig
from predictor.engine.types import GenerationRequest
from predictor.errors import Cancelled, RequestTimeout


def need(request: GenerationRequest) -> int:
    """KV-cache positions a request may occupy: its prompt plus its token cap."""
    return request.prepared.prompt_tokens + request.params.max_new_tokens


def dead(request: GenerationRequest, now: float, where: str = "") -> Exception | None:
    """The error to answer a request that must not go on (its client left, or its deadline passed), else None."""
    if request.cancelled.is_set():
        return Cancelled("cancelled")
    if request.deadline is not None and now > request.deadline:
        return RequestTimeout(f"request timed out{where}")
    return None


class Scheduler:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.waiting: deque[GenerationRequest] = deque()

    def __len__(self) -> int:
        return len(self.waiting)

    def add(self, request: GenerationRequest) -> None:
        self.waiting.append(request)

    def drain(self) -> list[GenerationRequest]:
        """Take every waiting request out (the engine is stopping)."""
        out = list(self.waiting)
        self.waiting.clear()
        return out

    def drop_dead(self, now: float | None = None) -> list[tuple[GenerationRequest, Exception]]:
        """Remove waiting requests that were cancelled or timed out; the caller answers them."""
        now = time.monotonic() if now is None else now
        gone = [(r, e) for r in self.waiting if (e := dead(r, now, " while queued")) is not None]
        if gone:
            dropped = {id(r) for r, _ in gone}
            self.waiting = deque(r for r in self.waiting if id(r) not in dropped)
        return gone

    def admit(self, active: list[int], prefilling: int) -> list[list[GenerationRequest]]:
        """Groups to prefill now. ``active``: the needs of the rows decoding and being prefilled; ``prefilling``:
        how many groups are being prefilled."""
        config = self.config
        needs = list(active)
        admitted: list[GenerationRequest] = []
        while self.waiting and len(needs) < config.max_batch_size:
            trial = [*needs, need(self.waiting[0])]
            if needs and len(trial) * max(trial) > config.max_batch_tokens:
                break  # wait for rows to finish
            needs = trial
            admitted.append(self.waiting.popleft())
        groups: dict[Any, list[GenerationRequest]] = {}
        for request in admitted:
            groups.setdefault(request.prepared.group_key, []).append(request)
        return [group[start:start + config.max_prefill_batch] for group in groups.values()
                for start in range(0, len(group), config.max_prefill_batch)]
