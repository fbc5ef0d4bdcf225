"""Graceful shutdown: on SIGTERM stop taking work, let in-flight requests finish, then exit.

uvicorn alone stops listening at once on SIGTERM, so readiness never turns 503 and new connections are refused
while Kubernetes still routes to the pod. Instead the first SIGTERM marks the model draining: readiness answers
503, new requests get 503 with ``Retry-After`` (HTTP here, gRPC in the model), and once nothing is in flight, or
``--shutdown_grace`` seconds have passed, the usual shutdown runs (uvicorn, then kserve's gRPC stop). A second
SIGTERM or SIGINT skips the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from predictor.server.probes import is_liveness

log = logging.getLogger(__name__)

_METRICS = "/metrics"


class Drainer:
    def __init__(self, model: Any, grace: float):
        self.model = model
        self.grace = grace
        self.active = 0  # HTTP requests in progress (not probes), including their preprocessing
        self.started_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def draining(self) -> bool:
        return bool(self.model.draining)

    def idle(self) -> bool:
        runtime = self.model.runtime
        return self.active == 0 and (runtime is None or runtime.engine.in_flight == 0)

    async def wait_idle(self) -> bool:
        deadline = time.monotonic() + self.grace
        while not self.idle():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def begin(self, loop: asyncio.AbstractEventLoop, then: Any) -> None:
        """Start draining (from the signal handler); ``then()`` runs once idle or past the grace."""
        self.model.draining = True
        self.started_at = time.monotonic()
        log.info("SIGTERM: draining (readiness 503, new requests 503) for up to %.0f s", self.grace)

        async def drain() -> None:
            finished = await self.wait_idle()
            log.info("drain %s after %.1f s; shutting down", "complete" if finished else "timed out",
                     time.monotonic() - (self.started_at or 0.0))
            then()

        self._task = loop.create_task(drain())

    def install_signal_handlers(self) -> None:
        """Put our SIGTERM handler in front of the current one (uvicorn's, installed while it serves).
        Only the main thread may set signal handlers; elsewhere (a Ray replica) the host handles shutdown."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)

        def forward(sig: int) -> None:
            if callable(previous):
                previous(sig, None)
            else:  # pragma: no cover - nobody installed a handler: fall back to the default behaviour
                signal.raise_signal(sig)

        def on_sigterm(sig: int, frame: Any) -> None:
            if self.draining or self.grace <= 0:
                forward(sig)
                return
            loop.call_soon_threadsafe(self.begin, loop, lambda: forward(sig))

        signal.signal(signal.SIGTERM, on_sigterm)


class DrainMiddleware:
    """Counts in-flight HTTP requests; while draining answers 503 (``Retry-After``) to all but liveness."""

    def __init__(self, app: Any, drainer: Drainer):
        self.app = app
        self.drainer = drainer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if is_liveness(path) or path == _METRICS:
            await self.app(scope, receive, send)
            return
        if self.drainer.draining:
            from predictor.errors import NotReady
            from predictor.server.http_errors import error_response, is_openai_route

            exc = NotReady("the server is shutting down; retry on another replica", retry_after=1)
            exc.code = "draining"  # what /health reports too: loading | unloaded | draining | failed
            await error_response(exc, is_openai_route(scope))(scope, receive, send)
            return
        self.drainer.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drainer.active -= 1


def wrap_lifespan(app: Any, drainer: Drainer) -> None:
    """Install the signal handler at app startup: uvicorn puts its own in place just before, and would
    otherwise replace ours."""
    original = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with original(app_) as state:
            drainer.install_signal_handlers()
            yield state

    app.router.lifespan_context = lifespan
