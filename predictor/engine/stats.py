"""One engine's figures, read alike by tests, ``/metrics`` and the benchmarks: occupancy (requests in flight,
decoding, queued), decode-step counters and the per-step time split (``timing.py``).

Occupancy is counted per engine slot (``Slot``), under one lock, so that the three gauges are one snapshot and
``in_flight == queued + running`` holds in every scrape: a slot counts as running from the moment its page joins
the decode batch until the slot is released, and as queued before that (waiting for a place among the pages being
worked on, decoding its image, waiting for prefill, being prefilled).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from predictor.engine import metrics
from predictor.engine.timing import StepTimer


@dataclass(eq=False)
class Slot:
    """A place in the engine, held by one page from before its image is decoded until its answer is read."""

    owner: Hashable  # the request the page belongs to: requests take turns (engine/scheduler.py)
    reserved_at: float = field(default_factory=time.monotonic)
    decoding: bool = False
    released: bool = False


class EngineStats:
    def __init__(self, device: Any):
        self.timer = StepTimer(device)
        self.steps = 0  # decode steps run
        self.joined = 0  # rows that joined the decode batch
        self.largest_prefill = 0  # most requests prefilled in one forward
        self.peak_rows = 0  # most rows decoding together
        self._lock = threading.Lock()
        self._in_flight = 0
        self._running = 0
        metrics.watch(self)

    # ---- occupancy (event loop: reserve/release; worker thread: decoding) -------------------------------------

    def reserve(self, owner: Hashable | None = None) -> Slot:
        with self._lock:
            self._in_flight += 1
        return Slot(owner if owner is not None else object())

    def release(self, slot: Slot | None = None) -> None:
        with self._lock:
            self._in_flight -= 1
            if slot is not None and not slot.released:
                slot.released = True
                self._running -= slot.decoding

    def decoding(self, slot: Slot | None) -> None:
        """A page joined the decode batch."""
        with self._lock:
            if slot is not None and not slot.released and not slot.decoding:
                slot.decoding = True
                self._running += 1

    def occupancy(self) -> tuple[int, int]:
        """(in flight, running), one snapshot."""
        with self._lock:
            return self._in_flight, self._running

    @property
    def in_flight(self) -> int:
        return self.occupancy()[0]

    @property
    def running(self) -> int:
        return self.occupancy()[1]

    # ---- decode steps ----------------------------------------------------------------------------------------------

    def take_steps(self) -> dict[str, float]:
        """The decode steps' mean time split since the last call (and start over): see ``timing.py``."""
        return self.timer.take()
