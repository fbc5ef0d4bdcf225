"""Where a decode step's time goes: host work, waiting for the device, and (on CUDA) device time.

Per step the worker notes four instants: start, all kernels queued (forward + sampling), the one device-to-host
read done, bookkeeping done, plus how long the model's forward call took. On CUDA, ``host`` is start->queued plus
read->done, ``sync`` is queued->read (the wait for the device), and two events bracketing the step's kernels give
its device time (read after the step's sync, so reading them never waits). On CPU kernels run synchronously
inside the calls: ``device`` is the forward call (kernels plus the model's own Python), ``host`` the rest of the
step (bans, sampling, bookkeeping), and ``sync`` ~0.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class StepTotals:
    steps: int = 0
    rows: int = 0
    host_s: float = 0.0
    sync_s: float = 0.0
    device_s: float = 0.0

    def summary(self) -> dict[str, float]:
        n = max(self.steps, 1)
        return {"steps": self.steps, "mean_rows": self.rows / n, "host_ms": 1e3 * self.host_s / n,
                "sync_ms": 1e3 * self.sync_s / n, "device_ms": 1e3 * self.device_s / n}


class StepTimer:
    def __init__(self, device: Any):
        self.cuda = str(device).startswith("cuda")
        self.totals = StepTotals()
        self._lock = threading.Lock()

    def events(self) -> tuple[Any, Any] | None:
        if not self.cuda:
            return None
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        return start, end

    def add(self, rows: int, instants: tuple[float, float, float, float], forward_s: float,
            events: tuple[Any, Any] | None) -> None:
        t0, t1, t2, t3 = instants
        host = (t1 - t0) + (t3 - t2)
        if events is not None:
            device = events[0].elapsed_time(events[1]) / 1e3
        else:
            device, host = forward_s, host - forward_s
        with self._lock:
            t = self.totals
            t.steps += 1
            t.rows += rows
            t.host_s += host
            t.sync_s += t2 - t1
            t.device_s += device

    def take(self) -> dict[str, float]:
        """The averages since the last call (and start over)."""
        with self._lock:
            totals, self.totals = self.totals, StepTotals()
        return totals.summary()
