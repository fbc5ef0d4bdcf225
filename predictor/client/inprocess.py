"""``--model_dir`` without ``--url``: the server's own app (``predictor.app.build_app``), built in this process
and called through httpx's ASGI transport. Requests take exactly the path they take on a server (parsing, limits,
the batching engine, the answers), so the outputs are the same; only the socket is missing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

import httpx

from predictor.config import Settings, validate

BASE_URL = "http://in-process"


def settings_for(model_dir: str, device: str, concurrency: int) -> Settings:
    """Server settings for a local run (raises ``ConfigError`` for a bad directory or device)."""
    # Room for every request the client keeps in flight, so none waits on a 429.
    settings = Settings(model_dir=model_dir, device=device, max_batch_size=max(1, min(concurrency, 64)),
                        max_queue=max(64, concurrency))
    validate(settings)
    return settings


@contextlib.asynccontextmanager
async def inprocess_client(settings: Settings, timeout: httpx.Timeout) -> AsyncIterator[httpx.AsyncClient]:
    logging.getLogger("predictor").setLevel(logging.WARNING)
    argv, sys.argv = sys.argv, sys.argv[:1]  # kserve parses sys.argv when imported; the client's flags are not its
    try:
        from predictor.app import build_app
    finally:
        sys.argv = argv
    app = build_app(settings)
    model = app.state.model
    try:
        await asyncio.to_thread(model.load)  # off the event loop, so Ctrl-C is handled while weights load
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL,
                                     timeout=timeout) as client:
            yield client
    finally:
        model.stop_engine()
