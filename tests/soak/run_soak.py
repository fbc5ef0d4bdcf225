"""`make soak`: the reliability suite on the tiny checkpoint, loopback only, bounded in count and time.

Prints one figure per line (``name: value``) and exits non-zero when a figure misses its bound. Sections:
catalogue (every bad input a 4xx naming the field, a good request answering after each), load (200 concurrent
requests against a queue of 64 and of 256), disconnects (50 streaming + 20 non-streaming clients leaving),
poison (a hostile request among good ones), shutdown (SIGTERM with requests in flight), PDF memory (peak RSS),
grace (SIGTERM with long requests on every protocol past a 3 s grace), hangups (300 clients closing mid-body),
binary (v2 REST binary extension bodies), fairness (a short request behind a 32-page PDF; in_flight == queued +
running during it). ``--only`` picks sections. Not part of `make test`; docs/RELIABILITY.md records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx

from tests.e2e import catalogue as cat
from tests.e2e.metrics_probe import generated, in_flight, wait_idle
from tests.e2e.server import Server, served, start_server
from tests.soak import binary_ext, fairness, grace, hangups, pdf_memory

FAILURES: list[str] = []


def figure(name: str, value: object, ok: bool = True) -> None:
    print(f"{name}: {value}{'' if ok else '  <-- FAILED'}", flush=True)
    if not ok:
        FAILURES.append(name)


@contextlib.contextmanager
def serving(model_dir: str, logs: Path, name: str, *flags: str) -> Iterator[Server]:
    with served(model_dir, str(logs / f"{name}.log"), *flags) as srv:
        yield srv


def _chat(max_tokens: int = 8, **extra: object) -> dict:
    return {**cat._chat(), "max_tokens": max_tokens, **extra}


# ---- sections -----------------------------------------------------------------------------------------------------


def section_catalogue(srv: Server) -> None:
    cases = cat.catalogue()
    named = healthy = server_errors = 0
    misses = []
    for case in cases:
        outcome = cat.run_case(case, srv.url, srv.grpc_target)
        if outcome.status == case.status and outcome.names(case.field):
            named += 1
        else:
            misses.append(f"{case.protocol}/{case.name} -> {outcome.status} {outcome.message[:80]!r}")
        server_errors += outcome.status >= 500
        healthy += cat.good_request(srv.url) == 200
    protocols = sorted({c.protocol for c in cases})
    figure("catalogue cases", f"{len(cases)} over {', '.join(protocols)}", len(cases) >= 60)
    figure("catalogue 4xx naming the field", f"{named}/{len(cases)}", named == len(cases))
    figure("catalogue 5xx answers", server_errors, server_errors == 0)
    figure("catalogue good request answered after each case", f"{healthy}/{len(cases)}", healthy == len(cases))
    for miss in misses:
        print(f"  miss: {miss}")


async def _burst(url: str, n: int, body: dict) -> list[httpx.Response | BaseException]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        return await asyncio.gather(*(client.post(url + cat.CHAT, json=body) for _ in range(n)),
                                    return_exceptions=True)


def section_load(srv: Server, queue: int) -> None:
    started = time.monotonic()
    results = asyncio.run(_burst(srv.url, 200, _chat(8)))
    ok = sum(isinstance(r, httpx.Response) and r.status_code == 200 for r in results)
    refused = sum(isinstance(r, httpx.Response) and r.status_code == 429 and bool(r.headers.get("retry-after"))
                  for r in results)
    lost = len(results) - ok - refused
    idle = wait_idle(srv.url, 30)
    figure(f"load queue {queue}: 200 concurrent -> 200 OK / 429 with Retry-After / other or lost",
           f"{ok} / {refused} / {lost} in {time.monotonic() - started:.1f} s", lost == 0)
    figure(f"load queue {queue}: in-flight gauge back to 0", "yes" if idle else f"no ({in_flight(srv.url)})", idle)
    if queue >= 200:
        figure(f"load queue {queue}: all succeed", f"{ok}/200", ok == 200)


async def _stream_and_leave(client: httpx.AsyncClient, url: str, body: dict) -> None:
    async with client.stream("POST", url + cat.CHAT, json=body) as response:
        lines = 0
        async for _ in response.aiter_lines():
            lines += 1
            if lines >= 4:
                return  # leaving mid-stream closes the connection


async def _call_and_leave(url: str, body: dict, timeout: float) -> None:
    async with httpx.AsyncClient(timeout=timeout) as client:
        with contextlib.suppress(httpx.TimeoutException):
            await client.post(url + cat.CHAT, json=body)


async def _disconnects(url: str, tokens: int) -> float:
    long = _chat(tokens, min_tokens=tokens, ngram_size=0)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=100)) as client:
        streams = [_stream_and_leave(client, url, {**long, "stream": True}) for _ in range(50)]
        calls = [_call_and_leave(url, long, 3.0) for _ in range(20)]
        await asyncio.gather(*streams, *calls)
    return time.monotonic()


def section_disconnects(srv: Server) -> None:
    tokens = 3000
    asked = 70 * tokens
    left_at = asyncio.run(_disconnects(srv.url, tokens))
    at_leave = generated(srv.url)
    idle = wait_idle(srv.url, 60)
    time.sleep(1.0)
    after = generated(srv.url) - at_leave
    figure("disconnects: clients that left (streaming + non-streaming)", "50 + 20")
    figure("disconnects: tokens generated after the last client left",
           f"{after:.0f} of {asked} asked ({100 * after / asked:.3f}%)", after < 0.01 * asked)
    figure("disconnects: in flight back to 0", f"{'yes' if idle else 'no'} after "
           f"{time.monotonic() - left_at:.1f} s", idle)


async def _poison(url: str) -> tuple[list[int], int]:
    async with httpx.AsyncClient(timeout=600) as client:
        good = [client.post(url + cat.CHAT, json=_chat(300, min_tokens=300, ngram_size=0)) for _ in range(4)]
        bad = client.post(url + cat.CHAT, json=_chat(300, temperature=2e-39, ngram_size=0))
        results = await asyncio.gather(*good, bad)
    return [r.status_code for r in results[:4]], results[4].status_code


def section_poison(srv: Server) -> None:
    good, bad = asyncio.run(_poison(srv.url))
    figure("poison: good requests beside a temperature=2e-39 request", f"{good.count(200)}/4 OK (poisoned one: "
           f"{bad})", good.count(200) == 4 and bad in (200, 400))


def section_shutdown(model_dir: str, logs: Path, grace: int = 30) -> None:
    srv = start_server(model_dir, str(logs / "shutdown.log"), "--shutdown_grace", str(grace))
    try:
        srv.wait_ready()
        statuses, new_status, ready_status, code, elapsed = asyncio.run(_sigterm(srv, grace))
    finally:
        srv.stop()
    figure("shutdown: in-flight requests completed after SIGTERM", f"{statuses.count(200)}/4", statuses == [200] * 4)
    figure("shutdown: readiness / new request during the drain", f"{ready_status} / {new_status}",
           ready_status == 503 and new_status == 503)
    figure("shutdown: exit status and time after SIGTERM", f"{code} in {elapsed:.1f} s (grace {grace} s)",
           code == 0 and elapsed < grace)


async def _sigterm(srv: Server, grace: int) -> tuple[list[int], int, int, int | None, float]:
    async with httpx.AsyncClient(timeout=grace + 30) as client:
        body = _chat(300, min_tokens=300, ngram_size=0)
        running = [asyncio.create_task(client.post(srv.url + cat.CHAT, json=body)) for _ in range(4)]
        while in_flight(srv.url) < 4:
            await asyncio.sleep(0.05)
        srv.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        await asyncio.sleep(0.3)
        ready = await client.get(f"{srv.url}/v2/models/{cat.MODEL}/ready")
        new = await client.post(srv.url + cat.CHAT, json=_chat(4))
        statuses = [r.status_code for r in await asyncio.gather(*running)]
    code = await asyncio.to_thread(srv.process.wait, grace + 10)
    return statuses, new.status_code, ready.status_code, code, time.monotonic() - sent


SECTIONS = ("catalogue", "load", "disconnects", "poison", "shutdown", "pdf", "grace", "hangups", "binary",
            "fairness")


def report(figures: Iterable[tuple[str, str, bool]]) -> None:
    for name, value, ok in figures:
        figure(name, value, ok)


def run_issue24_sections(wanted: set[str], model_dir: str, logs: Path) -> None:
    """Issue 24's scenarios: grace expiry, mid-body hang-ups, binary extension; head-of-line and gauge sum
    (``fairness``, tests/soak/fairness.py)."""
    if "grace" in wanted:
        report(grace.run(model_dir, logs))
    if wanted & {"hangups", "binary"}:
        with serving(model_dir, logs, "hangups") as srv:
            if "hangups" in wanted:
                report(hangups.run(srv))
            if "binary" in wanted:
                report(binary_ext.run(srv))
    if "fairness" in wanted:
        with serving(model_dir, logs, "fairness") as srv:
            report(fairness.run(srv))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=SECTIONS, metavar="SECTION",
                        help=f"sections to run (default: all): {' '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    wanted = set(args.only or SECTIONS)
    from predictor.testing.tiny import build

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        logs = Path(tmp)
        model_dir = build(str(logs / "tiny-v2"), "v2")
        print(f"soak: tiny DeepSeek-OCR-2 on CPU, loopback; server logs in {logs}", flush=True)
        if wanted & {"catalogue", "load"}:
            with serving(model_dir, logs, "main", "--max_images_per_request", "8", "--max_instances", "16") as srv:
                if "catalogue" in wanted:
                    section_catalogue(srv)
                if "load" in wanted:
                    section_load(srv, 64)
        if wanted & {"load", "disconnects", "poison"}:
            with serving(model_dir, logs, "queue256", "--max_queue", "256") as srv:
                if "load" in wanted:
                    section_load(srv, 256)
                if "disconnects" in wanted:
                    section_disconnects(srv)
                if "poison" in wanted:
                    section_poison(srv)
        if "shutdown" in wanted:
            section_shutdown(model_dir, logs)
        if "pdf" in wanted:
            with serving(model_dir, logs, "pdf") as srv:
                report(pdf_memory.run(srv))
        run_issue24_sections(wanted, model_dir, logs)
    figure("soak: wall time", f"{time.monotonic() - started:.0f} s")
    print("soak: " + ("all figures within bounds" if not FAILURES else f"FAILED: {', '.join(FAILURES)}"))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
