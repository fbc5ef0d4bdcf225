"""``--model_dir`` without ``--url``: the server's own app, built in this process and called through httpx's ASGI
transport. Requests take exactly the path they take on a server (parsing, limits, batching engine, answers), so
outputs are the same; only the socket is missing."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

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
    app, stop = _build_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL,
                                     timeout=timeout) as client:
            yield client
    finally:
        stop()


def _build_app(settings: Settings) -> tuple[Any, Callable[[], None]]:
    logging.getLogger("predictor").setLevel(logging.WARNING)
    argv, sys.argv = sys.argv, sys.argv[:1]  # kserve parses sys.argv when imported; the client's flags are not its
    try:
        from kserve import model_server
        from kserve.model_repository import ModelRepository
        from kserve.protocol.dataplane import DataPlane
        from kserve.protocol.model_repository_extension import ModelRepositoryExtension
        from kserve.protocol.rest.server import RESTServer
    finally:
        sys.argv = argv
    from predictor import http_errors, openai_api
    from predictor.hardware import disable_compile
    from predictor.model import OcrModel
    from predictor.runtime import load_runtime

    disable_compile()
    model = OcrModel(settings)
    model.runtime = load_runtime(settings)
    app = model_server.app
    openai_api.register(app, model)
    http_errors.install(app)
    app.add_middleware(http_errors.BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    repository = ModelRepository()
    repository.update(model)
    server = RESTServer("kserve.model_server:app", DataPlane(repository), ModelRepositoryExtension(repository),
                        http_port=0)
    server._register_endpoints(app)  # what RESTServer.start() does, without binding a port
    server._add_exception_handlers(app)
    return app, model.runtime.engine.stop
