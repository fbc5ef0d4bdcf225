"""A fair gate for the pages of concurrent requests: a semaphore whose waiters take turns by request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable

from predictor.engine.scheduler import Turns


class FairGate:
    """At most ``capacity`` holders at once, like a semaphore, but waiters are let in by request in turns (the
    owner served least recently first, engine/scheduler.py's ``Turns``), not in arrival order, and one owner holds
    at most ``per_owner`` places: the rest stay free for the next request, so a request arriving behind the pages
    of a 32-page PDF starts at once instead of after the PDF's 23rd page."""

    def __init__(self, capacity: int, per_owner: int | None = None):
        self.capacity = capacity
        self.per_owner = max(1, min(per_owner or capacity, capacity))
        self.held = 0
        self._owners: dict[Hashable, int] = {}  # places held per owner
        self._waiters: Turns[asyncio.Future[None]] = Turns()

    def _may_enter(self, owner: Hashable) -> bool:
        return self.held < self.capacity and self._owners.get(owner, 0) < self.per_owner

    @contextlib.asynccontextmanager
    async def hold(self, owner: Hashable) -> AsyncIterator[None]:
        if self._may_enter(owner) and not any(o == owner for o, _ in self._waiters.heads()):
            self._enter(owner)
            self._waiters.served(owner)
        else:
            granted = asyncio.get_running_loop().create_future()
            self._waiters.push(owner, granted)
            try:
                await granted  # _release() entered this owner before granting
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release(owner)  # let in just as it was cancelled: pass the place on
                else:
                    self._waiters.remove_if(lambda f: f is granted)
                raise
        try:
            yield
        finally:
            self._release(owner)

    def _enter(self, owner: Hashable) -> None:
        self.held += 1
        self._owners[owner] = self._owners.get(owner, 0) + 1

    def _release(self, owner: Hashable) -> None:
        self.held -= 1
        self._owners[owner] -= 1
        if not self._owners[owner]:
            del self._owners[owner]
        while self.held < self.capacity:
            nxt = next(((o, f) for o, f in self._waiters.heads() if self._may_enter(o)), None)
            if nxt is None:
                return
            waiter_owner, granted = nxt
            self._waiters.take(waiter_owner)
            if not granted.done():
                self._enter(waiter_owner)
                granted.set_result(None)
