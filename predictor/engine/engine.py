"""The asyncio face of the engine: admission control, per-request event streams, cancellation and timeouts.

Model code never runs on the event loop: requests go to the worker thread through a queue and every event
comes back with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Hashable
from typing import Any

from predictor.engine import metrics
from predictor.engine.config import EngineConfig
from predictor.engine.health import Health
from predictor.engine.stats import EngineStats, Slot
from predictor.engine.types import Delta, GenerationRequest, GenerationResult, SamplingParams
from predictor.engine.worker import Worker
from predictor.errors import NotReady, Overloaded, RequestTimeout
from predictor.families.base import PreparedPrompt


class Engine:
    def __init__(self, family: Any, device: Any, *, config: EngineConfig):
        self.family = family
        self.config = config
        self.stats = EngineStats(device)
        self.worker = Worker(family, device, config=config, stats=self.stats)

    @property
    def in_flight(self) -> int:
        return self.stats.in_flight

    def health(self) -> Health:
        """Red after an unrecoverable device error, or when the worker stopped ticking with work waiting."""
        return self.worker.heartbeat.check(busy=self.worker.busy)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def reserve(self, owner: Hashable | None = None) -> Slot:
        """Take a slot for a page about to be prepared, or refuse with 429 when running + queued is full.

        ``owner``: the request the page belongs to (its pages take one turn between them, engine/scheduler.py)."""
        health = self.health()
        if not health.ok:
            metrics.REJECTED.labels(reason="unhealthy").inc()
            raise NotReady(f"the engine is unhealthy ({health.reason}); this replica will restart", retry_after=10)
        if self.stats.in_flight >= self.config.capacity:
            metrics.REJECTED.labels(reason="queue_full").inc()
            raise Overloaded(f"server is at capacity ({self.config.capacity} requests in flight); retry later",
                             retry_after=1)
        return self.stats.reserve(owner)

    def release(self, slot: Slot | None = None) -> None:
        self.stats.release(slot)

    @contextlib.asynccontextmanager
    async def slot(self, owner: Hashable | None = None) -> AsyncIterator[Slot]:
        """Hold a slot (``reserve()``) for the body of the block, released however the block ends."""
        slot = self.reserve(owner)
        try:
            yield slot
        finally:
            self.release(slot)

    async def events(self, prepared: PreparedPrompt, params: SamplingParams, *, stream: bool,
                     request_id: str = "", slot: Slot | None = None) -> AsyncIterator[Delta | GenerationResult]:
        """Yield ``Delta``s (when streaming) and finally one ``GenerationResult``; raise the request's error.

        The caller must hold a slot (``async with engine.slot() as slot:``), passed as ``slot`` so that its page
        takes its request's turn and counts as running once it decodes. Closing the iterator early cancels the
        generation: the row leaves the batch at the next decode step. The engine consumes ``prepared``: its tensors
        are released once the prompt is prefilled, so prepare again to generate twice.
        """
        if not prepared.inputs:
            raise ValueError("this prepared prompt was already used (its tensors are released); prepare again")
        deadline = time.monotonic() + self.config.request_timeout
        request = GenerationRequest(prepared=prepared, params=params, stream=stream, request_id=request_id,
                                    loop=asyncio.get_running_loop(), events=asyncio.Queue(), deadline=deadline,
                                    slot=slot)
        if slot is not None:
            request.owner = slot.owner
        self.worker.submit(request)
        try:
            while True:
                # the worker enforces the deadline; this extra margin only guards against a wedged worker
                remaining = deadline - time.monotonic() + 5.0
                try:
                    event = await asyncio.wait_for(request.events.get(), timeout=max(remaining, 0.1))
                except TimeoutError as exc:
                    raise RequestTimeout("request timed out") from exc
                if isinstance(event, Exception):
                    raise event
                yield event
                if isinstance(event, GenerationResult):
                    return
        finally:
            request.cancelled.set()  # harmless after completion; frees the row when the client went away

    async def generate(self, prepared: PreparedPrompt, params: SamplingParams, request_id: str = "",
                       slot: Slot | None = None) -> GenerationResult:
        async for event in self.events(prepared, params, stream=False, request_id=request_id, slot=slot):
            if isinstance(event, GenerationResult):
                return event
        raise RuntimeError("engine ended without a result")  # pragma: no cover - events() always returns one
