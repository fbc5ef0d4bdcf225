"""Failures on a device: out of memory in decode evicts the newest row; a sticky device error or a stalled loop
turns the engine unhealthy (readiness and liveness red) and it refuses new work."""

from __future__ import annotations

import asyncio
import copy
import time

import pytest
import torch

from predictor.engine.engine import Engine
from predictor.engine.health import Heartbeat, is_fatal, is_oom
from predictor.engine.types import SamplingParams
from predictor.errors import EngineFault, NotReady, OutOfMemory
from predictor.families.base import ImageOptions
from tests.conftest import page_image
from tests.engine_rows import run_rows


def test_error_classification():
    assert is_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"))
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_fatal(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert is_fatal(RuntimeError("CUDA error: device-side assert triggered"))
    assert not is_fatal(RuntimeError("CUDA out of memory"))
    assert not is_fatal(ValueError("Image features and image tokens do not match"))


def test_heartbeat_turns_red_on_stall_only_with_work_waiting():
    beat = Heartbeat(stall_after=0.05)
    assert beat.check(busy=True).ok
    time.sleep(0.1)
    assert beat.check(busy=False).ok
    assert not beat.check(busy=True).ok and "stalled" in beat.check(busy=True).reason
    beat.tick()
    assert beat.check(busy=True).ok
    beat.fail("AcceleratorError: illegal address")
    assert not beat.check(busy=False).ok


def _engine(family) -> Engine:
    engine = Engine(family, "cpu", max_batch_size=8, max_batch_tokens=100_000, max_queue=8, request_timeout=120,
                    max_prefill_batch=1)
    engine.start()
    return engine




def _params(n: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, min_new_tokens=n, ngram_size=0)


def _failing_decode(model, exc: Exception, when):
    original = model.forward

    def forward(*args, **kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1 and when(ids.shape[0]):
            raise exc
        return original(*args, **kwargs)
    return forward


def test_out_of_memory_in_decode_evicts_the_newest_row(family):
    engine = _engine(family)
    model = engine.worker.model
    prepared = [family.prepare(page_image((640, 200), f"oom {i}"), "<image>\nFree OCR.", ImageOptions())
                for i in range(2)]
    fired, lone_steps = [], []

    def at_two_rows(rows: int) -> bool:
        if rows == 1:
            lone_steps.append(rows)
        if rows == 2 and not fired:
            fired.append(rows)
            return True
        return False

    try:
        alone = run_rows(engine, [(prepared[0], _params(300))], [0])[0]
        model.forward = _failing_decode(model, torch.OutOfMemoryError("CUDA out of memory."), at_two_rows)
        # the newer row joins once the older one is decoding, however slow the machine (a fixed delay was flaky)
        older, newer = run_rows(engine, [(prepared[0], _params(300)), (prepared[1], _params(300))],
                            [0, lambda: len(lone_steps) >= 3])
        del model.forward
    finally:
        engine.stop()
    assert fired
    assert isinstance(newer, OutOfMemory) and newer.status == 503
    assert older.token_ids == alone.token_ids  # the older row never noticed
    assert engine.health().ok


def test_sticky_device_error_turns_the_engine_unhealthy(family):
    engine = _engine(family)
    model = engine.worker.model
    prepared = family.prepare(page_image((640, 200), "xid"), "<image>\nFree OCR.", ImageOptions())
    try:
        assert engine.health().ok
        model.forward = _failing_decode(model, RuntimeError("CUDA error: an illegal memory access was encountered"),
                                        lambda rows: True)
        failed = run_rows(engine, [(prepared, _params(20))], [0])[0]
        del model.forward
        assert isinstance(failed, EngineFault)
        health = engine.health()
        assert not health.ok and "illegal memory access" in health.reason
        with pytest.raises(NotReady) as info:
            engine.reserve()
        assert info.value.status == 503 and info.value.retry_after
    finally:
        engine.stop()


def test_stop_fails_running_and_waiting_requests_at_once(family):
    """Unloading the model (or a shutdown past its grace) stops the engine: every request it still holds gets a
    503 right away instead of hanging until its own timeout (120 s here)."""
    engine = Engine(family, "cpu", max_batch_size=1, max_batch_tokens=100_000, max_queue=8, request_timeout=120,
                    max_prefill_batch=1)
    engine.start()
    prepared = family.prepare(page_image((640, 200), "stop"), "<image>\nFree OCR.", ImageOptions())

    async def main():
        async def one():
            async with engine.slot():
                try:
                    return await engine.generate(copy.copy(prepared), _params(100_000))
                except Exception as exc:  # noqa: BLE001 - the test inspects each outcome
                    return exc
        tasks = [asyncio.create_task(one()) for _ in range(2)]
        for _ in range(3000):  # one row decoding, the other waiting for its slot
            if engine.worker.rows and engine.worker.waiting:
                break
            await asyncio.sleep(0.01)
        assert engine.worker.rows and engine.worker.waiting
        await asyncio.to_thread(engine.stop)
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, NotReady) and o.status == 503 and o.retry_after for o in outcomes), outcomes
    late = asyncio.run(_submit_after_stop(engine, prepared))
    assert isinstance(late, NotReady)


async def _submit_after_stop(engine: Engine, prepared):
    try:
        return await asyncio.wait_for(engine.generate(copy.copy(prepared), _params(4)), timeout=15)
    except Exception as exc:  # noqa: BLE001
        return exc


def test_a_prefill_in_flight_when_the_device_fails_is_refused_at_once(family):
    """A page still being encoded when a sticky device error hits is answered at once, not at its own timeout."""
    import threading

    engine = _engine(family)
    model = engine.worker.model
    second_prefill_started, release = threading.Event(), threading.Event()
    real = engine.worker.prefiller.model

    class HeldSecondPrefill:
        calls = 0

        def __getattr__(self, name):
            return getattr(real, name)

        def __call__(self, **kwargs):
            HeldSecondPrefill.calls += 1
            if HeldSecondPrefill.calls == 2:
                second_prefill_started.set()
                release.wait(30)
            return real(**kwargs)

    engine.worker.prefiller.model = HeldSecondPrefill()
    prepared = [family.prepare(page_image((640, 200), f"xid {i}"), "<image>\nFree OCR.", ImageOptions())
                for i in range(2)]
    fatal = RuntimeError("CUDA error: an illegal memory access was encountered")
    model.forward = _failing_decode(model, fatal, lambda rows: second_prefill_started.is_set())
    try:
        started = time.monotonic()
        first, second = run_rows(engine, [(prepared[0], _params(2000)), (prepared[1], _params(20))],
                                 [0, lambda: engine.worker.rows != []])
        waited = time.monotonic() - started
    finally:
        release.set()
        del model.forward
        engine.stop()
    assert isinstance(first, EngineFault) and isinstance(second, EngineFault | NotReady), (first, second)
    assert waited < 25  # the held prefill is released only after 30 s: the answer did not wait for it
