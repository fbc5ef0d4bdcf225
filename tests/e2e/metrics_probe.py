"""Reading the server's Prometheus metrics from tests (and the soak suite)."""

from __future__ import annotations

import time

import httpx


def metric(url: str, name: str, headers: dict[str, str] | None = None) -> float:
    """Sum of every sample of ``name`` (all label values) on ``url``/metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10, headers=headers).text
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    if not seen:
        raise AssertionError(f"{name} missing from /metrics")
    return total


def generated(url: str) -> float:
    return metric(url, "deepseek_ocr_generation_tokens_total")


def in_flight(url: str) -> float:
    return metric(url, "deepseek_ocr_requests_in_flight")


def wait_idle(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if in_flight(url) == 0:
            return True
        time.sleep(0.1)
    return False


def tokens_after(url: str, timeout: float = 15.0) -> float:
    """Tokens generated from now until the engine's decode batch is empty (polled): ~0 when all work had stopped.
    Rows that go on generating keep the batch busy past ``timeout``, which fails."""
    before = generated(url)
    deadline = time.monotonic() + timeout
    while metric(url, "deepseek_ocr_requests_running") > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"rows still running after {timeout} s")
        time.sleep(0.05)
    return generated(url) - before
