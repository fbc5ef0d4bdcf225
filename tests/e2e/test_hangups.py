"""Clients that hang up before their body is complete: not an error. One quiet line (no traceback), traced as 499,
and a flood of them cannot flood the log."""

from __future__ import annotations

import time

import httpx

from tests.e2e.long_requests import CHAT, V1, V2, hang_up
from tests.e2e.server import served

PATHS = [CHAT, V1, V2]
PER_PATH = 20
QUIET_BOUND = 10  # hang-up lines a minute (docs/RELIABILITY.md), summary line included


def _new_lines(path: str, skip: int) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()[skip:]


def test_mid_body_hang_ups_are_quiet(tiny_v2_dir, tmp_path):
    log_path = str(tmp_path / "server.log")
    with served(tiny_v2_dir, log_path) as srv:
        skip = len(_new_lines(log_path, 0))
        for path in PATHS:
            for _ in range(PER_PATH):
                hang_up(srv.http_port, path)
        # a request after the flood is answered, and its trace line marks the end of the hang-ups' lines
        models = httpx.get(f"{srv.url}/v1/models", timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("http_status:200" in line for line in _new_lines(log_path, skip)):
            time.sleep(0.1)
        lines = _new_lines(log_path, skip)
    hang_ups = len(PATHS) * PER_PATH
    assert models.status_code == 200
    assert not [line for line in lines if "Traceback" in line or " ERROR " in line], "\n".join(lines[:40])
    traces = [line for line in lines if "kserve.trace" in line and "time:wall" in line and "http_method:POST" in line]
    assert len(traces) == hang_ups, "\n".join(traces[:10])
    assert all("http_status:499" in line for line in traces), "\n".join(t for t in traces if "499" not in t)[:2000]
    ours = [line for line in lines if "predictor.server.disconnect" in line]
    assert 1 <= len(ours) <= QUIET_BOUND, "\n".join(ours[:40])
    assert all("hung up" in line or "not logged" in line for line in ours), "\n".join(ours)
    others = [line for line in lines if "kserve.trace" not in line and line not in ours]
    assert len(others) <= 5, "\n".join(others[:40])  # e.g. a library's warning on the last request, not per hang-up
