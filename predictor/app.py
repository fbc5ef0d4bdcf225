"""The one place that wires the HTTP app around one model: our OpenAI routes (under the OpenAI prefix and
``/v1``), ``/health``, KServe's v1/v2 REST routes, liveness, ``/metrics``, the error handlers and the body limit.

The server (``python -m predictor``), the in-process API tests and the Ray Serve deployment all build the app
here, so a route or a handler added once is served everywhere. Building the app loads nothing: weights load in
``OcrModel.load()`` (synchronous) or ``OcrModel.start_engine()`` (kserve's background hook).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from predictor.config import Settings
from predictor.errors import NotReady, RouteNotSupported
from predictor.protocols.kserve.model import OcrModel
from predictor.protocols.kserve.plane import KServePlane, build_plane
from predictor.protocols.openai import routes as openai_routes
from predictor.server import auth, disconnect, drain, http_errors


def build_app(settings: Settings, model: OcrModel | None = None, *, app: FastAPI | None = None,
              kserve_routes: bool = True, docs: bool = False) -> FastAPI:
    """Every route of the predictor around ``model`` (a new, unloaded ``OcrModel(settings)`` when not given).

    ``app``: add the routes to this app instead of a new one. ``kserve_routes=False`` leaves out KServe's own
    routes, for kserve's ``ModelServer``, which adds them to its module-level app when it starts. The model is
    ``app.state.model``, its KServe plane ``app.state.kserve_plane`` (None without KServe's routes). ``docs``:
    keep ``/docs`` and ``/openapi.json`` (off by default).
    """
    model = model if model is not None else OcrModel(settings)
    if app is None:
        app = FastAPI(title="DeepSeek-OCR predictor", docs_url=None, redoc_url=None)
    openai_routes.register(app, model)  # first, so ours win where a path is shared with KServe v1
    install_routes(app, model, docs=docs)
    _add_liveness(app, model)  # before KServe's, which answers "alive" whatever the engine's state
    app.state.kserve_plane = _add_kserve_routes(app, model) if kserve_routes else None
    http_errors.install(app)
    app.state.drainer = install_http(app, model, settings)
    app.state.model = model
    return app


def _add_liveness(app: FastAPI, model: OcrModel) -> None:
    """``/v2/health/live`` and ``/``: 503 once the engine hit a sticky device error or stalled (the chart's
    liveness probe then restarts the pod); otherwise KServe's ``{"status": "alive"}``."""
    from fastapi.responses import JSONResponse

    async def live() -> JSONResponse:
        # both shapes: KServe v1 clients read "status", v2 clients (InferenceRESTClient) read "live"
        ok, reason = model.alive()
        if ok:
            return JSONResponse({"status": "alive", "live": True})
        return JSONResponse({"status": "unhealthy", "live": False, "reason": reason}, status_code=503)

    for path in ("/v2/health/live", "/"):
        app.add_api_route(path, live, methods=["GET"], include_in_schema=False)


def _add_kserve_routes(app: FastAPI, model: OcrModel) -> KServePlane:
    """KServe's REST routes (v1, v2, liveness, metrics) and its error handlers over the model's KServe plane: what
    kserve's REST server does when it starts, without binding a port."""
    from kserve.protocol.rest.server import RESTServer

    plane = build_plane(model)
    server = RESTServer("kserve.model_server:app", plane.dataplane, plane.extension, http_port=0)
    server._register_endpoints(app)
    server._add_exception_handlers(app)
    return plane


def install_routes(app: FastAPI, model: Any, *, docs: bool = False) -> None:
    """Before kserve's routes are added, so that ours win on a shared path."""
    _honest_server_readiness(app, model)
    _no_explainer(app)
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


def install_server(server: Any, model: OcrModel) -> None:
    """On a ``kserve.ModelServer`` before ``start()``: the model's KServe plane (the model under every served
    name, the guarded repository extension, our dataplane: raw v1 bodies, and server readiness and liveness that
    ask the model, where kserve's gRPC ``ServerReady`` answers true even with no model) and gRPC API keys."""
    plane = build_plane(model, server.registered_models)
    server.dataplane = plane.dataplane
    server.model_repository_extension = plane.extension
    checker = auth.KeyChecker.from_settings(model.settings)
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


def _no_explainer(app: FastAPI) -> None:
    """kserve's ``:explain`` answers 501 about an explainer host that a predictor never has."""

    async def explain(model_name: str) -> None:
        raise RouteNotSupported("POST /v1/models/{name}:explain is not supported by this server (it has no "
                                "explainer); use :predict", param="explain")

    app.add_api_route("/v1/models/{model_name}:explain", explain, methods=["POST"])


def _remove_docs(app: FastAPI) -> None:
    """The OpenAPI schema and Swagger UI describe every route to anyone who asks: off unless enabled."""
    paths = {app.openapi_url, app.docs_url, app.redoc_url, "/docs/oauth2-redirect"} - {None}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in paths]
    app.openapi_url = app.docs_url = app.redoc_url = None
