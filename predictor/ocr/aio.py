"""Asyncio helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Hashable
from typing import TypeVar

from predictor.engine.scheduler import Turns

T = TypeVar("T")


async def gather_or_cancel(*awaitables: Awaitable[T]) -> list[T]:
    """Like ``asyncio.gather``, but when one fails (a page refused with 429, one image's 500) the others are
    cancelled at once instead of generating to the end for a request that has already failed."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class FairGate:
    """At most ``capacity`` holders at once, like a semaphore, but waiters are let in by request in turns
    (round-robin over owners, engine/scheduler.py's ``Turns``), not in arrival order: a request arriving behind the
    pages of a 32-page PDF takes the next free place instead of the 23rd."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.held = 0
        self._waiters: Turns[asyncio.Future[None]] = Turns()

    @contextlib.asynccontextmanager
    async def hold(self, owner: Hashable) -> AsyncIterator[None]:
        if self.held < self.capacity and not self._waiters:
            self.held += 1
        else:
            granted = asyncio.get_running_loop().create_future()
            self._waiters.push(owner, granted)
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()  # let in just as it was cancelled: pass the place on
                else:
                    self._waiters.remove_if(lambda f: f is granted)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self.held -= 1
        while self.held < self.capacity and self._waiters:
            granted = self._waiters.pop()
            if not granted.done():
                self.held += 1
                granted.set_result(None)
