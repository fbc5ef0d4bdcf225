"""HTTP with retries: 429 and 503 (and gateway 502/504) wait as long as ``Retry-After`` says, at least, and
otherwise back off exponentially with jitter up to a cap; connection errors are retried the same way. Any other
error status fails that page with the server's own message.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from predictor.client.protocol import error_message

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class RequestFailed(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 10
    base_s: float = 0.5  # first backoff
    cap_s: float = 30.0  # longest backoff
    max_retry_after_s: float = 300.0  # a server asking for longer than this is not waited for longer

    def backoff(self, retry: int) -> float:
        """Upper bound of the wait before retry number ``retry`` (1-based): base * 2^(retry-1), capped."""
        return min(self.cap_s, self.base_s * 2 ** min(retry - 1, 62))

    def delay(self, retry: int, retry_after: float | None, jitter: float) -> float:
        """Seconds to wait: the backoff scaled into [1/2, 1] by ``jitter`` in [0, 1] (so clients that were refused
        together do not come back together), and never less than the server's ``Retry-After``."""
        wait = self.backoff(retry) * (0.5 + 0.5 * jitter)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after_s))
        return wait


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Transport:
    """POSTs JSON and returns the JSON answer, retrying what is worth retrying; ``on_retry`` counts retries."""

    def __init__(self, client: httpx.AsyncClient, policy: RetryPolicy, headers: dict[str, str] | None = None,
                 on_retry: Callable[[str], None] | None = None, rng: random.Random | None = None):
        self.client = client
        self.policy = policy
        self.headers = headers or {}
        self.on_retry = on_retry or (lambda reason: None)
        self.rng = rng or random.Random()

    async def post_json(self, url: str, body: bytes) -> Any:
        """POST an already serialised JSON body (built off the event loop: page images make it large)."""
        return await self.request("POST", url, body)

    async def get_json(self, url: str) -> Any:
        return await self.request("GET", url)

    async def request(self, method: str, url: str, body: bytes | None = None) -> Any:
        headers = {**self.headers, "Content-Type": "application/json"} if body is not None else self.headers
        retry = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self.client.request(method, url, content=body, headers=headers)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if retry >= self.policy.max_retries:
                    raise RequestFailed(f"{reason} (gave up after {retry} retries)") from exc
            else:
                if response.status_code == 200:
                    return _json(response)
                message = f"HTTP {response.status_code}: {error_message(_json_or_none(response), response.text[:300])}"
                if response.status_code not in RETRY_STATUSES:
                    raise RequestFailed(message, response.status_code)
                if retry >= self.policy.max_retries:
                    raise RequestFailed(f"{message} (gave up after {retry} retries)", response.status_code)
                reason = f"HTTP {response.status_code}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            retry += 1
            self.on_retry(reason)
            await asyncio.sleep(self.policy.delay(retry, retry_after, self.rng.random()))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise RequestFailed(f"the server answered {response.status_code} with a body that is not JSON",
                            response.status_code) from exc


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
