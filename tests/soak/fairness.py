"""Soak scenarios for issue 24 items 1 and 4, against a real server process: head-of-line (a 50-token request
sent 1 s after a 32-page PDF, against each alone) and the gauge sum (every /metrics scrape during that load shows
in_flight == queued + running). Returns figures for ``run_soak`` (section ``fairness``)."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time

import httpx

from tests.conftest import blank_pdf, png_bytes
from tests.e2e import catalogue as cat

GAUGES = ("deepseek_ocr_requests_in_flight", "deepseek_ocr_requests_queued", "deepseek_ocr_requests_running")


def _body(data: bytes | str, mime: str, tokens: int, exact: bool) -> dict:
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    body = cat._chat([cat._url(encoded, mime)], max_tokens=tokens)
    return {**body, "min_tokens": tokens} if exact else body


async def _timed(client: httpx.AsyncClient, url: str, body: dict, delay: float = 0.0) -> float:
    await asyncio.sleep(delay)
    start = time.perf_counter()
    response = await client.post(url + cat.CHAT, json=body)
    response.raise_for_status()
    return time.perf_counter() - start


async def _scrape(client: httpx.AsyncClient, url: str, until: asyncio.Task, samples: list[tuple[float, ...]]) -> None:
    while not until.done():
        values = {}
        for line in (await client.get(url + "/metrics")).text.splitlines():
            name, _, value = line.partition(" ")
            if name in GAUGES:
                values[name] = float(value)
        samples.append(tuple(values[name] for name in GAUGES))
        await asyncio.sleep(0.1)


async def _scenario(url: str) -> tuple[float, float, float, float, list[tuple[float, ...]]]:
    pdf = _body(blank_pdf(32), "application/pdf", 1, exact=False)
    short = _body(png_bytes((640, 480)), "image/png", 50, exact=True)
    async with httpx.AsyncClient(timeout=600) as client:
        await _timed(client, url, _body(cat.OK, "image/png", 2, exact=True))  # warm-up
        alone = statistics.median([await _timed(client, url, short) for _ in range(3)])
        pdf_alone = await _timed(client, url, pdf)
        both = asyncio.ensure_future(asyncio.gather(_timed(client, url, pdf), _timed(client, url, short, 1.0)))
        samples: list[tuple[float, ...]] = []
        await _scrape(client, url, both, samples)
        pdf_with, behind = await both
    return alone, behind, pdf_alone, pdf_with, samples


def run(srv) -> list[tuple[str, str, bool]]:
    alone, behind, pdf_alone, pdf_with, samples = asyncio.run(_scenario(srv.url))
    broken = [s for s in samples if s[0] != s[1] + s[2]]
    most_queued = max((s[1] for s in samples), default=0)
    return [
        ("head-of-line: 50-token request behind a 32-page PDF / alone",
         f"{behind:.2f} s / {alone:.2f} s = {behind / alone:.2f}x (target <= 3x)", behind <= 3 * alone),
        ("head-of-line: 32-page PDF with the short request / alone",
         f"{pdf_with:.1f} s / {pdf_alone:.1f} s = {pdf_with / pdf_alone:.2f} (target <= 1.2)",
         pdf_with <= 1.2 * pdf_alone),
        ("gauge sum: scrapes with in_flight != queued + running",
         f"{len(broken)}/{len(samples)} (most queued {most_queued:.0f})", not broken and bool(samples)),
    ]
