"""The one place where errors become HTTP responses, for every route on the server.

Routes we register are ``OpenAIRoute``s and answer OpenAI's body ``{"error": {"message", "type", "param",
"code"}}``, whatever prefix they are mounted under; KServe's routes keep KServe's ``{"error": "..."}``. Either way
the status is the error's own and 429/503 carry ``Retry-After``. Unexpected exceptions become a plain 500
without internals.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from predictor.errors import EngineFault, InvalidRequest, PayloadTooLarge, PredictorError

INTERNAL = "internal error; the server logged it under request id {rid}"

log = logging.getLogger(__name__)


class OpenAIRoute(APIRoute):
    """A route of ours: its errors use OpenAI's body. ``register_routes`` records them on the app."""


def register_routes(app: FastAPI, routes: list[Any]) -> None:
    """Remember our routes, so that a refusal before routing (the body limit) can tell whose request it is."""
    known = getattr(app.state, "openai_routes", [])
    app.state.openai_routes = [*known, *(r for r in routes if isinstance(r, OpenAIRoute))]


def is_openai_route(scope: dict[str, Any]) -> bool:
    """Whether the route serving this request is ours. Before routing, ours serve it when one fully matches
    (path and method): they are registered ahead of KServe's, so the router would pick them."""
    route = scope.get("route")
    if route is not None:
        return isinstance(route, OpenAIRoute)
    state = getattr(scope.get("app"), "state", None)
    return any(r.matches(dict(scope))[0] == Match.FULL for r in getattr(state, "openai_routes", []))


def openai_error_body(exc: PredictorError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.error_type, "param": exc.param, "code": exc.code}}


def error_response(exc: PredictorError, openai: bool) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    body = openai_error_body(exc) if openai else {"error": exc.message}
    return JSONResponse(status_code=exc.status, content=body, headers=headers)


def sse_error_frame(exc: BaseException) -> str:
    """An error after a stream started: an SSE frame with the OpenAI error body (then the caller sends [DONE])."""
    error = exc if isinstance(exc, PredictorError) else EngineFault("internal error while streaming")
    return f"data: {json.dumps(openai_error_body(error))}\n\n"


async def _predictor_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PredictorError)
    if exc.status >= 500:
        log.warning("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(exc, is_openai_route(request.scope))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    message = f"{loc}: {first.get('msg', 'invalid request')}" if loc else first.get("msg", "invalid request")
    return error_response(InvalidRequest(message, param=loc), is_openai_route(request.scope))


def install(app: FastAPI) -> None:
    """Register our handlers; Starlette picks the most specific class, so kserve's own types keep theirs."""
    app.add_exception_handler(PredictorError, _predictor_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before they are buffered, whether or not Content-Length is sent."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(f"request body exceeds the {self.max_bytes}-byte limit", param="body")
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        exc = PayloadTooLarge(f"request body exceeds the {self.max_bytes}-byte limit", param="body")
        response = error_response(exc, is_openai_route(scope))
        await response(scope, receive, send)


class UnexpectedErrorMiddleware:
    """A bug must not leak internals nor break the client's connection pool.

    Without this an unexpected exception reaches Starlette's outermost handler, which answers kserve's
    ``"<ExceptionClass> : <message>"`` body and re-raises; uvicorn then closes a keep-alive connection the client
    believes is still open. Here it is logged with the request id and answered with a plain 500 in the route's
    protocol, with ``Connection: close`` so the client opens a fresh connection.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except ClientDisconnect:
            raise  # the client is gone: not a failure (predictor.server.disconnect answers for it)
        except Exception:
            headers = dict(scope.get("headers") or [])
            rid = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or uuid.uuid4().hex
            log.exception("request %s (%s %s) failed", rid, scope.get("method"), scope.get("path"))
            if started:
                raise  # too late for a response; uvicorn closes the connection
            response = error_response(EngineFault(INTERNAL.format(rid=rid)), is_openai_route(scope))
            response.headers["Connection"] = "close"
            response.headers["X-Request-Id"] = rid
            await response(scope, receive, send)
