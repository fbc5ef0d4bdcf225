"""A log line that anyone on the network can cause, rate limited so that a flood of them cannot flood the log.

At most ``limit`` lines per ``interval`` seconds are written; the rest are counted, and one summary line says how
many were left out once the interval ends (from a timer on the running event loop, or at the next line).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable


class QuietLog:
    def __init__(self, logger: logging.Logger, what: str, *, limit: int = 9, interval: float = 60.0,
                 level: int = logging.INFO, clock: Callable[[], float] = time.monotonic):
        """``what`` names the lines in the summary (e.g. "client hang-ups")."""
        self.logger = logger
        self.what = what
        self.limit = limit
        self.interval = interval
        self.level = level
        self.clock = clock
        self._window_start: float | None = None
        self._written = 0
        self.suppressed = 0
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless this interval's quota is spent; True when written."""
        now = self.clock()
        if self._window_start is None or now - self._window_start >= self.interval:
            self.flush()
            self._window_start, self._written = now, 0
        if self._written < self.limit:
            self._written += 1
            self.logger.log(self.level, msg, *args)
            return True
        self.suppressed += 1
        if self.suppressed == 1:
            self._schedule_flush(self._window_start + self.interval - now)
        return False

    def flush(self) -> None:
        """Write the summary of what was left out, if anything was."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.suppressed:
            self.logger.log(self.level, "%d more %s in the last %g s were not logged (at most %d lines per "
                            "%g s)", self.suppressed, self.what, self.interval, self.limit, self.interval)
            self.suppressed = 0

    def _schedule_flush(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a unit test, a thread): the next line after the interval writes the summary
        self._timer = loop.call_later(max(delay, 0.0), self._timed_flush)

    def _timed_flush(self) -> None:
        self._timer = None
        self.flush()
        self._window_start = None  # the next line starts a fresh interval
