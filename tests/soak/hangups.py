"""Soak: a flood of clients that send headers, part of the body, then hang up (the issue saw ~59 log lines each,
an ERROR traceback and a trace of ``http_status:500``). Counts what the server writes to its log for them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.e2e import long_requests as lr
from tests.e2e.server import Server

PER_PATH = 100
PATHS = (lr.CHAT, lr.V1, lr.V2)
QUIET_BOUND = 10  # hang-up lines per minute, summary included (predictor/server/quiet_log.py defaults)


def _lines(path: str) -> list[str]:
    return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()


def run(srv: Server) -> Iterator[tuple[str, str, bool]]:
    skip = len(_lines(srv.log_path))
    for path in PATHS:
        for _ in range(PER_PATH):
            lr.hang_up(srv.http_port, path)
    good = httpx.post(srv.url + lr.CHAT, timeout=120, json={**lr.chat(False), "max_tokens": 2, "min_tokens": 0})
    time.sleep(1.0)  # the last trace lines are written after their response
    lines = _lines(srv.log_path)[skip:]
    n = len(PATHS) * PER_PATH
    traces = [line for line in lines if "kserve.trace" in line and "time:wall" in line and "http_method:POST" in line]
    ours = [line for line in lines if "predictor.server.disconnect" in line]
    errors = [line for line in lines if " ERROR " in line or line.startswith("Traceback")]
    rest = len(lines) - 2 * len(traces) - len(ours)
    yield (f"hang-ups: {n} clients closing mid-body (OpenAI, v1, v2): log lines written", f"{len(lines)} "
           f"({len(lines) / n:.2f} per client: kserve's 2 trace lines per request, {len(ours)} of ours, {rest} other)",
           len(ours) <= QUIET_BOUND)
    yield ("hang-ups: ERROR lines and tracebacks", str(len(errors)), not errors)
    traced = sum("http_status:499" in line for line in traces)
    yield ("hang-ups: traced as 499", f"{traced}/{n}", traced == n)
    yield ("hang-ups: a good request after the flood", str(good.status_code), good.status_code == 200)
