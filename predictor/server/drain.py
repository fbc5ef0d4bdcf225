"""Graceful shutdown: on SIGTERM stop taking work, let in-flight requests finish, then exit.

uvicorn alone stops listening at once on SIGTERM, so readiness never turns 503 and new connections are refused
while Kubernetes still routes to the pod. Instead the first SIGTERM marks the model draining: readiness answers
503, new requests get 503 with ``Retry-After`` (HTTP here, gRPC in the model), and once nothing is in flight, or
``--shutdown_grace`` seconds have passed, the usual shutdown runs (uvicorn, then kserve's gRPC stop). A second
SIGTERM or SIGINT skips the wait.

Past the grace, the requests still running are cut, each told to retry elsewhere rather than left to uvicorn's
plain-text 500: the engine stops, so whatever it holds is refused with ``NotReady`` through the request's own path
(503 with ``Retry-After``, a final SSE error event then ``[DONE]``, gRPC ``UNAVAILABLE``); an HTTP request still
running a moment later (reading a slow body, decoding pages) is cancelled here and answered the same way. The log
says how many were cut, and the process then exits with ``EXIT_CUT`` instead of 0, so an orchestrator sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from predictor.server.probes import is_liveness

log = logging.getLogger(__name__)

_METRICS = "/metrics"
EXIT_CUT = 3  # the exit status when requests were cut at the end of the grace (1: load failed, 2: bad flags)
SETTLE = 1.0  # seconds the refused requests get to answer through their own path before they are cut here


class Drainer:
    def __init__(self, model: Any, grace: float):
        self.model = model
        self.grace = grace
        self.requests: set[_InFlight] = set()  # HTTP requests in progress (not probes), with their preprocessing
        self.started_at: float | None = None
        self.cut = 0  # requests still running when the grace ran out
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> int:
        return len(self.requests)

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
            if not finished:
                await self.cut_remaining()
            log.info("drain %s after %.1f s; shutting down", "complete" if finished else "timed out",
                     time.monotonic() - (self.started_at or 0.0))
            then()

        self._task = loop.create_task(drain())

    async def cut_remaining(self) -> None:
        """Past the grace: answer every request still running with a refusal to retry elsewhere."""
        grpc = int(getattr(self.model, "grpc_in_flight", 0))
        self.cut = self.active + grpc
        log.warning("shutdown grace of %g s expired: cutting %d requests still running (%d HTTP, %d gRPC); they get "
                    "503 with Retry-After, a stream error event, or UNAVAILABLE", self.grace, self.cut, self.active,
                    grpc)
        await asyncio.to_thread(self.model.stop_engine)  # what the engine holds is refused through its own path
        await self._settle()
        for request in list(self.requests):
            request.cut()
        await self._settle()

    async def _settle(self) -> None:
        deadline = time.monotonic() + SETTLE
        while self.requests and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

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
            if self.draining:  # a second SIGTERM: no more waiting
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
        request = _InFlight(scope, receive, send)
        self.drainer.requests.add(request)
        try:
            await request.run(self.app)
        finally:
            self.drainer.requests.discard(request)


def _refusal() -> Any:
    from predictor.errors import NotReady

    return NotReady("the server shut down before this request finished; retry on another replica", retry_after=1)


class _InFlight:
    """One HTTP request in progress, run as its own task so that the end of the grace can cut it and answer."""

    def __init__(self, scope: dict[str, Any], receive: Any, send: Any):
        self.scope, self.receive, self.send = scope, receive, send
        self.task: asyncio.Task[None] | None = None
        self.started = self.done = self.sse = self.cutting = False

    async def tracked_send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            # kserve sends the KServe v1 stream, our only other stream, without a Content-Type
            content_type = dict(message.get("headers") or []).get(b"content-type")
            self.sse = content_type is None or content_type.startswith(b"text/event-stream")
        elif message["type"] == "http.response.body":
            self.done = not message.get("more_body", False)
        await self.send(message)

    async def run(self, app: Any) -> None:
        self.task = asyncio.ensure_future(app(self.scope, self.receive, self.tracked_send))
        try:
            await self.task
        except asyncio.CancelledError:
            if not self.cutting:
                raise
            await self._answer_cut()

    def cut(self) -> bool:
        """Cancel the request (its answer follows in ``run``); False when it is already complete."""
        if self.task is None or self.task.done() or self.done:
            return False
        self.cutting = True
        self.task.cancel()
        return True

    async def _answer_cut(self) -> None:
        from predictor.server.http_errors import error_response, is_openai_route, sse_error_frame

        exc = _refusal()
        openai = is_openai_route(self.scope)
        if not self.started:
            await error_response(exc, openai)(self.scope, self.receive, self.send)
        elif self.sse and not self.done:
            frame = sse_error_frame(exc) if openai else f"data: {json.dumps({'error': exc.message})}\n\n"
            await self.send({"type": "http.response.body", "body": frame.encode(), "more_body": True})
            await self.send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
        # else: a plain response already half sent cannot change its status; the server closes the connection


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
