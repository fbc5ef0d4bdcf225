"""Stop the work of a client that has gone away, for non-streaming HTTP requests too.

A streaming response notices a closed connection when it next writes, and closing the stream cancels the
generation. A non-streaming handler never writes until it is done, so without this a client that timed out
(the ``openai`` client then retries twice) leaves its generation running to the end, holding a batch row that
others wait for. Here, once the request body has been read, a watcher waits on the ASGI ``receive`` channel;
``http.disconnect`` before the response is complete cancels the handler, and the cancellation reaches the
engine, where the row leaves the batch at its next decode step.

A client that goes away (before finishing its body, or before the response) is not a server error: it gets one
INFO line without a traceback, rate limited (``QuietLog``) since anyone can cause it, and the response status seen
by kserve's trace and access log is 499 (nginx's "client closed request"); nothing reaches the client, which is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.requests import ClientDisconnect

from predictor.server.quiet_log import QuietLog

log = logging.getLogger(__name__)
CLIENT_CLOSED = 499
quiet = QuietLog(log, "client hang-ups")


class DisconnectMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        await _Exchange(scope, receive, send).run(self.app)


class _Exchange:
    """One POST request: watches for the client leaving, and answers for it when it does."""

    def __init__(self, scope: dict[str, Any], receive: Any, send: Any):
        self.scope, self.receive, self.send = scope, receive, send
        self.body_read = asyncio.Event()
        self.hung_up = False  # the client closed before its body was complete
        self.client_left = False  # ... or after it, before the response was complete
        self.started = self.done = False

    async def tracked_receive(self) -> dict[str, Any]:
        message = await self.receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.hung_up = self.hung_up or (message["type"] == "http.disconnect" and not self.body_read.is_set())
            self.body_read.set()
        return message

    async def tracked_send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if self.gone:  # whatever the route made of a half-read body, nobody reads it: trace it as 499
                message = {**message, "status": CLIENT_CLOSED}
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.done = True
        await self.send(message)

    @property
    def gone(self) -> bool:
        return self.hung_up or self.client_left

    async def watch(self, handler: asyncio.Future[None]) -> None:
        await self.body_read.wait()
        while not handler.done():
            message = await self.receive()
            if message["type"] == "http.disconnect":
                if not self.done and not handler.done():
                    self.client_left = True
                    handler.cancel()
                return

    async def run(self, app: Any) -> None:
        handler = asyncio.ensure_future(app(self.scope, self.tracked_receive, self.tracked_send))
        watcher = asyncio.ensure_future(self.watch(handler))
        try:
            await handler
        except asyncio.CancelledError:
            if not self.client_left:
                raise  # the server itself is cancelling us
        except ClientDisconnect:
            self.hung_up = True
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if self.gone:
            await self._closed()

    async def _closed(self) -> None:
        method, path = self.scope["method"], self.scope["path"]
        if self.hung_up:
            quiet("client hung up before sending its whole body: %s %s (%d)", method, path, CLIENT_CLOSED)
        else:
            quiet("client left before the response to %s %s; its work is cancelled (%d)", method, path,
                  CLIENT_CLOSED)
        if not self.started:  # for the trace and access log only: the server drops what it sends to a closed peer
            await self.send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})
            await self.send({"type": "http.response.body", "body": b""})
