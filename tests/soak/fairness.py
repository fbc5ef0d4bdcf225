"""Soak, simple versions of issue 24 items 1 and 4 (the engine's own benchmark is bench/bench_fairness.py when
present): a short request behind a 32-page PDF (head-of-line), and in_flight == queued + running under load."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator

import httpx

from tests.e2e import catalogue as cat
from tests.e2e.server import Server

GAUGES = ("deepseek_ocr_requests_in_flight", "deepseek_ocr_requests_queued", "deepseek_ocr_requests_running")


def _short() -> dict:
    return cat._chat(max_tokens=50, min_tokens=50, ngram_size=0)


def _pdf() -> dict:
    url = "data:application/pdf;base64," + base64.b64encode(cat.blank_pdf(32)).decode()
    return cat._chat([{"type": "image_url", "image_url": {"url": url}}], max_tokens=1)


async def _timed(client: httpx.AsyncClient, url: str, body: dict) -> tuple[float, int]:
    started = time.monotonic()
    r = await client.post(url + cat.CHAT, json=body)
    return time.monotonic() - started, r.status_code


async def _head_of_line(url: str) -> tuple[float, float, float, float, list[int]]:
    async with httpx.AsyncClient(timeout=600) as client:
        short_alone, s1 = await _timed(client, url, _short())
        pdf_alone, s2 = await _timed(client, url, _pdf())
        pdf = asyncio.create_task(_timed(client, url, _pdf()))
        await asyncio.sleep(1.0)
        short_with, s3 = await _timed(client, url, _short())
        pdf_with, s4 = await pdf
    return short_alone, short_with, pdf_alone, pdf_with, [s1, s2, s3, s4]


def head_of_line(srv: Server) -> Iterator[tuple[str, str, bool]]:
    short_alone, short_with, pdf_alone, pdf_with, statuses = asyncio.run(_head_of_line(srv.url))
    yield ("head-of-line: answers (short, PDF, PDF + short)", str(statuses), statuses == [200] * 4)
    ratio = short_with / short_alone
    yield ("head-of-line: 50-token request 1 s after a 32-page PDF vs alone",
           f"{short_with:.2f} s vs {short_alone:.2f} s ({ratio:.1f}x; bound 3x)", ratio <= 3.0)
    growth = pdf_with / pdf_alone - 1
    yield ("head-of-line: the PDF's own time beside it vs alone",
           f"{pdf_with:.2f} s vs {pdf_alone:.2f} s ({100 * growth:+.0f} %; bound +20 %)", growth <= 0.20)


def _gauges(url: str) -> tuple[float, ...]:
    """The three gauges from one scrape."""
    values = dict.fromkeys(GAUGES, 0.0)
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return tuple(values[g] for g in GAUGES)


async def _sample_under_load(url: str, n: int) -> tuple[list[tuple[float, ...]], list[int]]:
    samples: list[tuple[float, ...]] = []
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        body = cat._chat(max_tokens=16, min_tokens=16, ngram_size=0)
        load = asyncio.gather(*(client.post(url + cat.CHAT, json=body) for _ in range(n)))
        while not load.done():
            samples.append(await asyncio.to_thread(_gauges, url))
            await asyncio.sleep(0.05)
        statuses = [r.status_code for r in await load]
    return samples, statuses


def gauge_sum(srv: Server, n: int = 100) -> Iterator[tuple[str, str, bool]]:
    samples, statuses = asyncio.run(_sample_under_load(srv.url, n))
    busy = [s for s in samples if s[0] > 0]
    off = [s for s in busy if s[0] != s[1] + s[2]]
    worst = max(busy, key=lambda s: abs(s[0] - s[1] - s[2]), default=(0.0, 0.0, 0.0))
    yield (f"gauges: {n} concurrent requests answered 200", f"{statuses.count(200)}/{n}", statuses.count(200) == n)
    yield ("gauges: scrapes with in_flight != queued + running",
           f"{len(off)}/{len(busy)} (worst: in_flight {worst[0]:.0f}, queued {worst[1]:.0f}, running "
           f"{worst[2]:.0f}); max queued {max((s[1] for s in busy), default=0):.0f}", busy != [] and not off)
