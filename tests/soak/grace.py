"""Soak: SIGTERM with a short grace and many long requests on every protocol: each one still running when the grace
ends must be told to retry elsewhere (503 + Retry-After, a stream error event then [DONE], gRPC UNAVAILABLE), the
log must count them, and the exit status must say so."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx

from tests.e2e import long_requests as lr
from tests.e2e.metrics_probe import in_flight
from tests.e2e.server import Server, start_server

GRACE = 3
MIX = {"openai": 8, "openai-stream": 8, "v1": 4, "v1-stream": 4, "grpc": 4, "slow-upload": 2}


def _calls(srv: Server) -> dict[str, Callable[[], object]]:
    calls: dict[str, Callable[[], object]] = {}
    for kind, count in MIX.items():
        for i in range(count):
            name = f"{kind}-{i}"
            if kind == "openai":
                calls[name] = lambda: httpx.post(srv.url + lr.CHAT, json=lr.chat(False), timeout=120)
            elif kind == "openai-stream":
                calls[name] = lambda: lr.sse(srv.url + lr.CHAT, lr.chat(True))
            elif kind == "v1":
                calls[name] = lambda: httpx.post(srv.url + lr.V1, json=lr.v1(False), timeout=120)
            elif kind == "v1-stream":
                calls[name] = lambda: lr.sse(srv.url + lr.V1, lr.v1(True))
            elif kind == "grpc":
                calls[name] = lambda: lr.grpc_infer(srv.grpc_target)
            else:
                upload = lr.start_upload(srv.http_port)
                calls[name] = lambda upload=upload: lr.answer(upload)
    return calls


def _timed(results: dict[str, object], answered: dict[str, float], name: str, call: Callable[[], object]) -> None:
    lr.record(results, name, call)
    answered[name] = time.monotonic()


def told_to_retry(result: object) -> bool:
    """503 with Retry-After, a stream ending in an error event and [DONE], or gRPC UNAVAILABLE."""
    if isinstance(result, httpx.Response):
        return result.status_code == 503 and bool(result.headers.get("retry-after"))
    if isinstance(result, tuple):
        status, events = result
        return (status == 200 and len(events) >= 2 and events[-1] == "data: [DONE]"
                and "error" in json.loads(events[-2][len("data: "):]))
    if isinstance(result, grpc.StatusCode):
        return result == grpc.StatusCode.UNAVAILABLE
    if isinstance(result, str):  # a raw HTTP answer
        head = result.split("\r\n\r\n")[0].lower()
        return head.startswith("http/1.1 503") and "retry-after:" in head
    return False


def run(model_dir: str, logs: Path) -> Iterator[tuple[str, str, bool]]:
    srv = start_server(model_dir, str(logs / "grace.log"), "--shutdown_grace", str(GRACE))
    results: dict[str, object] = {}
    answered: dict[str, float] = {}
    try:
        srv.wait_ready()
        calls = _calls(srv)
        threads = [threading.Thread(target=_timed, args=(results, answered, k, f)) for k, f in calls.items()]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while in_flight(srv.url) < len(calls) - MIX["slow-upload"] and time.monotonic() < deadline:
            time.sleep(0.05)
        srv.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = srv.process.wait(timeout=120)
        elapsed = time.monotonic() - sent
        for t in threads:
            t.join(timeout=120)
        log = Path(srv.log_path).read_text(encoding="utf-8", errors="replace")
    finally:
        srv.stop()
    told = sum(told_to_retry(r) for r in results.values())
    other = sorted({_describe(r) for r in results.values() if not told_to_retry(r)})
    logged = re.search(r"cutting (\d+) request", log)
    kinds = ", ".join(f"{n} {k}" for k, n in MIX.items())
    yield (f"grace: requests running at the end of a {GRACE} s grace ({kinds}) told to retry elsewhere",
           f"{told}/{len(results)}", told == len(results) == sum(MIX.values()))
    yield ("grace: other answers (5xx other than 503, cut connections)", f"{len(other)} {other[:3]}", not other)
    yield ("grace: requests cut, as logged", logged.group(1) if logged else "no line",
           bool(logged) and int(logged.group(1)) == len(results))
    last = max(answered.values(), default=sent) - sent
    yield ("grace: exit status; last answer and exit after SIGTERM",
           f"{code}; {last:.1f} s and {elapsed:.1f} s (the rest is the interpreter's teardown)", code == 3)
    yield ("grace: tracebacks in the log", str(log.count("Traceback")), "Traceback" not in log)


def _describe(result: object) -> str:
    if isinstance(result, httpx.Response):
        return f"HTTP {result.status_code}"
    if isinstance(result, tuple):
        return f"stream ending {result[1][-1:]!r}"[:80]
    return f"{type(result).__name__}: {result}"[:80]
