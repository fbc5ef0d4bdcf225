"""Engines for tests: ``running_engine()`` builds and starts one; ``run_rows()`` runs rows through it, each outcome
(result or exception) returned in order."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Sequence
from typing import Any

from predictor.engine.config import EngineConfig
from predictor.engine.engine import Engine

TEST_LIMITS = dict(max_batch_size=8, max_batch_tokens=100_000, max_queue=8, request_timeout=120.0, max_prefill_batch=1)


def running_engine(family: Any, **limits: Any) -> Engine:
    """A started CPU engine on ``family``; ``limits`` are ``EngineConfig`` fields over ``TEST_LIMITS``."""
    engine = Engine(family, "cpu", config=EngineConfig(**{**TEST_LIMITS, **limits}))
    engine.start()
    return engine


def run_rows(engine: Engine, items: Sequence, delays: Sequence[float | Callable[[], bool]] | None = None) -> list:
    """``items`` are (prepared, params) pairs. ``delays`` are seconds, or callables polled until true (a join that
    waits for an engine state rather than a clock)."""
    async def one(prepared, params, delay):
        if callable(delay):
            while not delay():
                await asyncio.sleep(0.005)
        else:
            await asyncio.sleep(delay)
        async with engine.slot():
            try:
                return await engine.generate(copy.copy(prepared), params)  # the engine consumes it
            except Exception as exc:  # noqa: BLE001 - the test inspects each outcome
                return exc

    async def main():
        waits = delays if delays is not None else [0] * len(items)
        return await asyncio.gather(*(one(p, s, d) for (p, s), d in zip(items, waits, strict=True)))
    return asyncio.run(main())
