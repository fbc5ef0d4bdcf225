"""What protects the server, installed in one place: API keys, draining, disconnects, body limit, error hygiene,
the guarded repository extension, honest readiness and the API docs being off unless asked for."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from predictor import auth, disconnect, drain, http_errors, repository
from predictor.config import Settings
from predictor.errors import NotReady


def install_routes(app: FastAPI, model: Any, *, docs: bool = False) -> None:
    """Before kserve's routes are added, so that ours win on a shared path."""
    _honest_server_readiness(app, model)
    if not docs:
        _remove_docs(app)


def install_http(app: FastAPI, model: Any, settings: Settings) -> drain.Drainer:
    """Middlewares on ``app``, innermost first (Starlette puts the last one added outermost)."""
    app.add_middleware(http_errors.UnexpectedErrorMiddleware)
    app.add_middleware(http_errors.BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(disconnect.DisconnectMiddleware)
    drainer = drain.Drainer(model, settings.shutdown_grace)
    app.add_middleware(drain.DrainMiddleware, drainer=drainer)
    app.add_middleware(auth.ApiKeyMiddleware, checker=auth.KeyChecker.from_settings(settings))
    drain.wrap_lifespan(app, drainer)
    return drainer


def install_server(server: Any, settings: Settings, model: Any) -> None:
    """On a ``kserve.ModelServer`` before ``start()``: the guarded repository extension, our dataplane (raw v1
    bodies, see ``predictor/dataplane.py``), gRPC API keys, and a server readiness that asks the model (kserve's
    gRPC ``ServerReady`` answers true even with no model)."""
    from predictor.dataplane import OcrDataPlane

    repository.install(server, settings.enable_repository_extension)
    server.dataplane = OcrDataPlane(model_registry=server.registered_models)

    async def ready() -> bool:
        return bool(await model.healthy())

    server.dataplane.ready = ready
    checker = auth.KeyChecker.from_settings(settings)
    if checker.enabled:
        auth.install_grpc(checker)


def _honest_server_readiness(app: FastAPI, model: Any) -> None:
    """kserve's ``/v2/health/ready`` says ready while weights load or after an unload; ours asks the model.
    Registered before kserve's routes, so it wins."""

    async def ready() -> JSONResponse:
        if not await model.healthy():
            raise NotReady("the model is not ready", retry_after=5)
        return JSONResponse({"ready": True})

    app.add_api_route("/v2/health/ready", ready, methods=["GET"])


def _remove_docs(app: FastAPI) -> None:
    """The OpenAPI schema and Swagger UI describe every route to anyone who asks: off unless enabled."""
    paths = {app.openapi_url, app.docs_url, app.redoc_url, "/docs/oauth2-redirect"} - {None}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in paths]
    app.openapi_url = app.docs_url = app.redoc_url = None
