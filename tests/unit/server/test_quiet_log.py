"""QuietLog: lines anyone can cause are rate limited, and what is left out is summed up once."""

from __future__ import annotations

import asyncio
import logging

from predictor.server.quiet_log import QuietLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.quiet"]


def test_at_most_limit_lines_per_interval_then_one_summary(caplog):
    caplog.set_level(logging.INFO, logger="test.quiet")
    clock = Clock()
    quiet = QuietLog(logging.getLogger("test.quiet"), "hang-ups", limit=3, interval=10.0, clock=clock)
    written = [quiet("hang-up %d", i) for i in range(50)]
    assert written == [True] * 3 + [False] * 47
    assert _messages(caplog) == ["hang-up 0", "hang-up 1", "hang-up 2"]
    clock.now += 10.0  # the next interval: the summary first, then a fresh quota
    assert quiet("hang-up %d", 50)
    assert _messages(caplog)[3:] == ["47 more hang-ups in the last 10 s were not logged (at most 3 lines per 10 s)",
                                    "hang-up 50"]
    clock.now += 30.0
    quiet.flush()  # nothing left out since: no summary
    assert len(_messages(caplog)) == 5


def test_the_summary_comes_on_time_when_the_flood_stops(caplog):
    caplog.set_level(logging.INFO, logger="test.quiet")

    async def flood() -> None:
        quiet = QuietLog(logging.getLogger("test.quiet"), "hang-ups", limit=2, interval=0.2)
        for _ in range(10):
            quiet("hang-up")
        await asyncio.sleep(0.5)

    asyncio.run(flood())
    assert _messages(caplog) == ["hang-up", "hang-up",
                                 "8 more hang-ups in the last 0.2 s were not logged (at most 2 lines per 0.2 s)"]
