"""API keys: when the server has any, every route but the probes needs one (HTTP and gRPC alike).

Keys come from ``--api_key`` / ``PREDICTOR_API_KEY`` (comma-separated) and ``--api_key_file`` (one per line, a
mounted Secret); several keys let a deployment rotate them. A request presents ``Authorization: Bearer KEY``
(OpenAI routes also accept Azure's ``api-key: KEY``; gRPC reads the ``authorization`` metadata). Keys are held
only as SHA-256 digests and compared in constant time; neither keys nor presented values are ever logged.

Liveness and readiness stay open because Kubernetes probes send no key; ``--metrics_auth`` decides ``/metrics``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from predictor.config import Settings
from predictor.errors import Unauthorized
from predictor.server.probes import GRPC_PROBES, is_probe

MISSING = "an API key is required: send 'Authorization: Bearer <key>'"
WRONG = "the API key is not valid"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def load_keys(settings: Settings) -> list[str]:
    keys = [k for k in settings.api_key if k]
    if settings.api_key_file:
        with open(settings.api_key_file, encoding="utf-8") as f:
            keys += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    return keys


class KeyChecker:
    def __init__(self, keys: Iterable[str], metrics_auth: bool = False):
        self._digests = [_digest(k) for k in keys]
        self.metrics_auth = metrics_auth

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyChecker:
        return cls(load_keys(settings), settings.metrics_auth)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def valid(self, presented: str | None) -> bool:
        if presented is None:
            return False
        digest = _digest(presented)
        # Compare against every key without stopping early, so timing says nothing about which one matched.
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return matched

    def is_open(self, method: str, path: str) -> bool:
        if path == "/metrics":
            return not self.metrics_auth
        return method in ("GET", "HEAD") and is_probe(path)

    def check(self, authorization: str | None, api_key: str | None = None) -> None:
        """Raise ``Unauthorized`` unless one header carries a valid key."""
        token = bearer_token(authorization)
        if token is None and api_key is None:
            raise Unauthorized(MISSING)
        if not (self.valid(token) or self.valid(api_key)):
            raise Unauthorized(WRONG)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ApiKeyMiddleware:
    """ASGI middleware: 401 in the route's protocol body (OpenAI or KServe) before the request reaches a route."""

    def __init__(self, app: Any, checker: KeyChecker):
        self.app = app
        self.checker = checker

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.checker.enabled or self.checker.is_open(scope["method"],
                                                                                        scope["path"]):
            await self.app(scope, receive, send)
            return
        from predictor.server.http_errors import error_response, is_openai_route

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        openai = is_openai_route(scope)
        try:
            self.checker.check(headers.get("authorization"), headers.get("api-key") if openai else None)
        except Unauthorized as exc:
            response = error_response(exc, openai)
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def grpc_interceptor_class(base: type) -> type:
    """A gRPC interceptor class (subclass of kserve's ``base`` interceptor, which it then runs) that refuses
    calls without a valid ``authorization`` metadata value with UNAUTHENTICATED."""
    import grpc

    class GrpcApiKeyInterceptor(base):  # type: ignore[misc, valid-type]
        checker: KeyChecker

        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            refused = grpc_refusal(self.checker, details.method, details.invocation_metadata)
            if refused is not None:
                return _refusal(grpc, refused)
            return await super().intercept_service(continuation, details)

    return GrpcApiKeyInterceptor


def grpc_refusal(checker: KeyChecker, method: str, metadata: Any) -> str | None:
    """Why a gRPC call (``method`` as ``/pkg.Service/Name`` or ``Name``) is refused, or None when it may pass."""
    if not checker.enabled or method.rsplit("/", 1)[-1] in GRPC_PROBES:
        return None
    values = {str(k).lower(): v for k, v in metadata or () if isinstance(v, str)}
    try:
        checker.check(values.get("authorization"))
    except Unauthorized as exc:
        return exc.message
    return None


def _refusal(grpc: Any, message: str) -> Any:
    async def refuse(request: Any, context: Any) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(refuse)


def install_grpc(checker: KeyChecker) -> None:
    """kserve builds its gRPC server with fixed interceptors (kserve/protocol/grpc/server.py); ours takes the
    place of its logging interceptor there, and runs it after the key check."""
    from kserve.protocol.grpc import server as grpc_server

    base = getattr(grpc_server.LoggingInterceptor, "wrapped_base", grpc_server.LoggingInterceptor)
    cls = grpc_interceptor_class(base)
    cls.checker = checker
    cls.wrapped_base = base
    grpc_server.LoggingInterceptor = cls
