"""Which waiting request is prefilled next: the waiting queue, admission within the KV budget and the prefill
slots, and dropping requests that were cancelled or ran out of time. Pure Python (no torch): tested without a
model.

Requests, not pages, take turns (docs/ARCHITECTURE.md, "Scheduling"): pages wait in one queue per request
(``GenerationRequest.owner``), and admission serves the requests round-robin in the order they arrived, one page
per turn. A page of a request that arrives behind a 32-page PDF is therefore admitted within one turn of each
request ahead of it, and the PDF keeps one turn in every round, so neither starves. Only as many prefill groups as
there are prefill workers are handed over at once: the rest wait here, where the turns apply, rather than in the
prefill pool's first-come queue. A decode slot is taken by joining after a prefill, so decode slots follow the
same rule.

The budget: the cache holds rows x longest row (every row is padded to the longest), so that product, not the
sum of the rows' lengths, is what must fit in ``max_batch_tokens``. A lone request is always admitted. When the
request whose turn it is does not fit, admission waits for rows to finish (a smaller one does not overtake it).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from predictor.engine.config import EngineConfig
from predictor.engine.types import GenerationRequest
from predictor.errors import Cancelled, RequestTimeout

T = TypeVar("T")


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


class Turns(Generic[T]):
    """Items queued per owner; owners are served round-robin in the order they first queued, one item per turn,
    and each owner's items in the order they came. An owner whose queue empties leaves the rotation."""

    def __init__(self) -> None:
        self._queues: OrderedDict[Hashable, deque[T]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def __bool__(self) -> bool:
        return bool(self._queues)

    def __iter__(self) -> Iterator[T]:
        return (item for q in self._queues.values() for item in q)

    def push(self, owner: Hashable, item: T) -> None:
        self._queues.setdefault(owner, deque()).append(item)  # a new owner joins at the end of the round

    def peek(self) -> T:
        return next(iter(self._queues.values()))[0]

    def pop(self) -> T:
        """The next item in turn; its owner moves to the end of the round."""
        return self.take(next(iter(self._queues)))

    def take(self, owner: Hashable) -> T:
        """``owner``'s next item, out of turn if need be; the owner moves to the end of the round."""
        queue = self._queues[owner]
        item = queue.popleft()
        if queue:
            self._queues.move_to_end(owner)
        else:
            del self._queues[owner]
        return item

    def in_turn_order(self) -> Iterator[tuple[Hashable, T]]:
        """(owner, item) in the order ``pop`` would give them, without taking any."""
        queues = list(self._queues.items())
        for depth in range(max((len(q) for _, q in queues), default=0)):
            yield from ((owner, q[depth]) for owner, q in queues if depth < len(q))

    def remove_if(self, doomed: Callable[[T], bool]) -> list[T]:
        """Take out every item ``doomed`` says, wherever it waits (owners keep their place in the round)."""
        removed = []
        for owner in list(self._queues):
            queue = self._queues[owner]
            gone = [item for item in queue if doomed(item)]
            if not gone:
                continue
            removed.extend(gone)
            kept = deque(item for item in queue if all(item is not g for g in gone))
            if kept:
                self._queues[owner] = kept
            else:
                del self._queues[owner]
        return removed

    def clear(self) -> list[T]:
        items = list(self)
        self._queues.clear()
        return items


class Scheduler:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.waiting: Turns[GenerationRequest] = Turns()

    def __len__(self) -> int:
        return len(self.waiting)

    def add(self, request: GenerationRequest) -> None:
        self.waiting.push(request.owner, request)

    def drain(self) -> list[GenerationRequest]:
        """Take every waiting request out (the engine is stopping)."""
        return self.waiting.clear()

    def drop_dead(self, now: float | None = None) -> list[tuple[GenerationRequest, Exception]]:
        """Remove waiting requests that were cancelled or timed out; the caller answers them."""
        now = time.monotonic() if now is None else now
        errors: dict[int, Exception] = {}

        def doomed(request: GenerationRequest) -> bool:
            error = dead(request, now, " while queued")
            if error is not None:
                errors[id(request)] = error
            return error is not None

        return [(r, errors[id(r)]) for r in self.waiting.remove_if(doomed)]

    @staticmethod
    def dead_rows(requests: list[GenerationRequest], now: float | None = None) -> list[tuple[int, Exception]]:
        """The running rows (by index) that must leave the batch now, each with the error to answer."""
        now = time.monotonic() if now is None else now
        return [(i, error) for i, request in enumerate(requests) if (error := dead(request, now)) is not None]

    def admit(self, active: list[int], prefilling: int) -> list[list[GenerationRequest]]:
        """Groups to hand to the prefiller now, in turn order. ``active``: the needs of the rows decoding and being
        prefilled; ``prefilling``: how many groups the prefiller holds."""
        config = self.config
        free = config.prefill_workers - prefilling
        needs = list(active)
        groups: list[list[GenerationRequest]] = []
        while self.waiting and free > 0 and len(needs) < config.max_batch_size:
            picked = self._next(groups, free)
            if picked is None:
                break  # every free prefill slot is taken: the rest keep their turn
            owner, request, group = picked
            trial = [*needs, need(request)]
            if needs and len(trial) * max(trial) > config.max_batch_tokens:
                break  # wait for rows to finish
            if group is None:
                group = []
                groups.append(group)
            group.append(self.waiting.take(owner))
            needs = trial
        return groups

    def _next(self, groups: list[list[GenerationRequest]],
              free: int) -> tuple[Hashable, GenerationRequest, list[GenerationRequest] | None] | None:
        """The request whose turn it is, with the open group it joins (None: a new group). When no new group can
        start, the first request in turn order that can share an open group's forward joins it instead: the ones
        it passes keep their place for the next prefill."""
        open_groups = [g for g in groups if len(g) < self.config.max_prefill_batch]
        for owner, request in self.waiting.in_turn_order():
            key = request.prepared.group_key
            group = next((g for g in open_groups if g[0].prepared.group_key == key), None)
            if group is not None or len(groups) < free:
                return owner, request, group
        return None
