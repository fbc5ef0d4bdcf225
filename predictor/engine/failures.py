"""The worker's failure policy: what a failed prefill, join or decode step means for its requests and the engine.

Out of memory fails (or, in a decode step, evicts the newest) rows and carries on; a sticky device error marks the
engine unhealthy (``health.py``) and every held request is answered at once; any other error fails only the
requests it touched. ``Worker`` (worker.py) mixes this in: the state it reads is the worker's own.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from typing import Any

import torch

from predictor.engine import metrics
from predictor.engine.health import Heartbeat, is_fatal, is_oom
from predictor.engine.kv import SlotCache
from predictor.engine.rows import Row
from predictor.engine.scheduler import Scheduler
from predictor.engine.types import GenerationRequest
from predictor.errors import EngineFault, NotReady, OutOfMemory

log = logging.getLogger("predictor.engine.worker")


def oom() -> OutOfMemory:
    return OutOfMemory("out of GPU memory; retry later", retry_after=5)


def stopping() -> NotReady:
    return NotReady("the model is unloading or this server is shutting down; retry", retry_after=1)


class FailurePolicy:
    rows: list[Row]
    batch: SlotCache | None
    pending: list[tuple[Any, list[GenerationRequest]]]
    inbox: queue.Queue[GenerationRequest | None]
    scheduler: Scheduler
    heartbeat: Heartbeat
    device: torch.device

    def _remove(self, indices: list[int]) -> None:
        raise NotImplementedError

    def _step_failed(self, exc: BaseException) -> None:
        """A decode step raised: out of memory evicts the newest row; a device error stops the engine."""
        if is_oom(exc) and len(self.rows) > 1:
            newest = max(range(len(self.rows)), key=lambda i: self.rows[i].seq)
            log.warning("out of memory in a decode step at %d rows; evicting the newest", len(self.rows))
            self.rows[newest].request.emit(oom())
            metrics.FINISHED.labels(reason="error").inc()
            self._remove([newest])
            self._free_memory()
            return
        if not is_oom(exc):
            log.exception("decode step failed", exc_info=exc)
        self._device_failed(exc)
        self._fail_all(oom if is_oom(exc) else lambda: EngineFault("generation failed inside the model"))

    def _device_failed(self, exc: BaseException) -> None:
        if is_fatal(exc):
            log.critical("unrecoverable device error; the engine stops and reports unhealthy: %s", exc)
            self.heartbeat.fail(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")

    def _refuse_all(self, make_error: Callable[[], Exception]) -> None:
        """Answer every request the worker holds: in the inbox, waiting, being prefilled (their prefill may still be
        running; its result is dropped) and decoding."""
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.scheduler.add(item)
        for _, group in self.pending:
            for request in group:
                request.emit(make_error())
        self.pending = []
        for request in self.scheduler.drain():
            request.emit(make_error())
        self._fail_all(make_error)

    def _fail_request(self, request: GenerationRequest, exc: BaseException, stage: str) -> None:
        if is_oom(exc):
            self._free_memory()
            request.emit(oom())
        else:
            log.warning("request %s failed in %s: %s: %s", request.request_id, stage, type(exc).__name__, exc)
            request.emit(EngineFault("the model failed on this input"))
        metrics.FINISHED.labels(reason="error").inc()

    def _fail_all(self, make_error: Callable[[], Exception]) -> None:
        """Fail every running row, each with its own exception object (they are raised in different tasks)."""
        for row in self.rows:
            row.request.emit(make_error())
            metrics.FINISHED.labels(reason="error").inc()
        self.rows = []
        if self.batch is not None:
            self.batch.clear()
        self._free_memory()

    def _free_memory(self) -> None:
        if self.device.type == "cuda" and self.heartbeat.fatal is None:
            torch.cuda.empty_cache()
