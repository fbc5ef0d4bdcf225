"""Which waiting request is prefilled next: the waiting queue, admission within the KV budget and the prefill
slots, and dropping requests that were cancelled or ran out of time. Pure Python (no torch): tested without a
model.

Requests, not pages, take turns (docs/ARCHITECTURE.md, "Scheduling"): pages wait in one queue per request
(``GenerationRequest.owner``), and admission takes one page per turn from the request served least recently
(``Turns``). A page of a request that arrives behind a 32-page PDF is therefore admitted at the next free prefill
slot, and the PDF keeps one turn in every round, so neither starves. Only as many prefill groups as
there are prefill workers are handed over at once: the rest wait here, where the turns apply, rather than in the
prefill pool's first-come queue. A decode slot is taken by joining after a prefill, so decode slots follow the
same rule.

The budget: the cache holds rows x longest row (every row is padded to the longest), so that product, not the
sum of the rows' lengths, is what must fit in ``max_batch_tokens``. A lone request is always admitted. When the
request whose turn it is does not fit, admission waits for rows to finish (a smaller one does not overtake it).
"""

from __future__ import annotations

import time
from collections import deque
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
    """Items queued per owner, served one item per turn, each owner's items in the order they came. Next is the
    owner served least recently, counting turns: an owner that was never served (or is long forgotten) ranks as
    served just before the latest turn at the moment it queued. So owners that stay queued alternate
    (round-robin), an owner that arrives while another's item is being worked on goes before that owner's next
    item, and an owner is passed over only by owners that arrived before its last turn: nobody starves."""

    _MEMORY = 1024  # owners remembered after their queue emptied (a forgotten one ranks as new)

    def __init__(self) -> None:
        self._queues: dict[Hashable, deque[T]] = {}
        self._rank: dict[Hashable, float] = {}  # owners with queued items -> their place in the order
        self._served: dict[Hashable, int] = {}  # owner -> the turn it was last served in
        self._turn = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def __bool__(self) -> bool:
        return bool(self._queues)

    def __iter__(self) -> Iterator[T]:
        return (item for q in self._queues.values() for item in q)

    def push(self, owner: Hashable, item: T) -> None:
        if owner not in self._queues:
            self._queues[owner] = deque()
            self._rank[owner] = self._served.get(owner, self._turn - 0.5)
        self._queues[owner].append(item)

    def heads(self) -> list[tuple[Hashable, T]]:
        """Each owner's next item, owners in turn order."""
        return [(owner, self._queues[owner][0]) for owner in sorted(self._queues, key=self._rank.__getitem__)]

    def pop(self) -> T:
        """The next item in turn."""
        return self.take(self.heads()[0][0])

    def take(self, owner: Hashable) -> T:
        """``owner``'s next item (out of turn if need be); the turn counts as the owner's."""
        queue = self._queues[owner]
        item = queue.popleft()
        self.served(owner)
        if not queue:
            self._forget_queue(owner)
        return item

    def served(self, owner: Hashable) -> None:
        """Count a turn for ``owner`` (also one taken without queueing)."""
        self._turn += 1
        self._served.pop(owner, None)
        self._served[owner] = self._turn  # newest last: the oldest are forgotten first
        if owner in self._rank:
            self._rank[owner] = self._turn
        while len(self._served) > self._MEMORY:
            del self._served[next(iter(self._served))]

    def remove_if(self, doomed: Callable[[T], bool]) -> list[T]:
        """Take out every item ``doomed`` says, wherever it waits (owners keep their place)."""
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
                self._forget_queue(owner)
        return removed

    def clear(self) -> list[T]:
        items = list(self)
        self._queues.clear()
        self._rank.clear()
        return items

    def _forget_queue(self, owner: Hashable) -> None:
        del self._queues[owner]
        del self._rank[owner]


class Scheduler:
    def __init__(self, config: EngineConfig, cost: Callable[[GenerationRequest], int] = lambda request: 0,
                 parallel_limit: int | None = None):
        """``cost`` and ``parallel_limit``: prefills run side by side only while their costs together stay within the
        limit (the prefiller's memory rule, engine/prefill.py); a prefill that would wait for that is not handed
        over yet, so that it does not hold a prefill slot while others wait their turn."""
        self.config = config
        self.cost = cost
        self.parallel_limit = parallel_limit
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

    def admit(self, decoding: list[GenerationRequest],
              prefilling: list[list[GenerationRequest]]) -> list[list[GenerationRequest]]:
        """Groups to hand to the prefiller now, given the requests decoding and the groups being prefilled."""
        config = self.config
        free = config.prefill_workers - len(prefilling)
        needs = [need(r) for r in decoding] + [need(r) for group in prefilling for r in group]
        load = sum(self.cost(r) for group in prefilling for r in group)
        groups: list[list[GenerationRequest]] = []
        while self.waiting and free > 0 and len(needs) < config.max_batch_size:
            picked = self._next(groups, free)
            if picked is None:
                break  # every free prefill slot is taken: the rest keep their turn
            owner, request, group = picked
            trial = [*needs, need(request)]
            if needs and len(trial) * max(trial) > config.max_batch_tokens:
                break  # wait for rows to finish
            alone = not prefilling and (not groups or group is groups[0])  # the first prefill always runs
            cost = self.cost(request)
            if not alone and self.parallel_limit is not None and load + cost > self.parallel_limit:
                break  # it would wait beside the running prefills: it waits here, in turn
            if group is None:
                group = []
                groups.append(group)
            group.append(self.waiting.take(owner))
            needs, load = trial, load + cost
        return groups

    def _next(self, groups: list[list[GenerationRequest]],
              free: int) -> tuple[Hashable, GenerationRequest, list[GenerationRequest] | None] | None:
        """The next page in turn with the open group it joins (None: a new group). When no new group can start,
        the first page in turn that can share an open group's forward joins it: the ones it passes keep their
        place."""
        open_groups = [g for g in groups if len(g) < self.config.max_prefill_batch]
        for owner, request in self.waiting.heads():
            key = request.prepared.group_key
            group = next((g for g in open_groups if g[0].prepared.group_key == key), None)
            if group is not None or len(groups) < free:
                return owner, request, group
        return None
