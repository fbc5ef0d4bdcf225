"""Stop the work of a client that has gone away, for non-streaming HTTP requests too.

A streaming response notices a closed connection when it next writes, and closing the stream cancels the
generation. A non-streaming handler never writes until it is done, so without this a client that timed out
(the ``openai`` client then retries twice) leaves its generation running to the end, holding a batch row that
others wait for. Here, once the request body has been read, a watcher waits on the ASGI ``receive`` channel;
``http.disconnect`` before the response is complete cancels the handler, and the cancellation reaches the
engine, where the row leaves the batch at its next decode step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


class DisconnectMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()
        response_done = False
        client_left = False

        async def tracked_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read.set()
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal response_done
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                response_done = True
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, tracked_receive, tracked_send))

        async def watch() -> None:
            nonlocal client_left
            await body_read.wait()
            while not handler.done():
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not response_done and not handler.done():
                        client_left = True
                        handler.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await handler
        except asyncio.CancelledError:
            if not client_left:
                raise  # the server itself is cancelling us
            log.info("client left before the response to %s %s; its work is cancelled", scope["method"],
                     scope["path"])
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
