"""The whole app in-process: kserve's REST routes plus ours on kserve's FastAPI app, with a loaded tiny model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def app_model(tiny_v2_dir: str):
    from kserve import model_server
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import RESTServer

    from predictor import http_errors, openai_api
    from predictor.config import Settings
    from predictor.model import OcrModel
    from predictor.runtime import load_runtime

    settings = Settings(model_dir=tiny_v2_dir, device="cpu", max_batch_size=1, max_queue=0,
                        default_max_tokens=16, max_body_bytes=2_000_000)
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
    yield app, model
    model.runtime.engine.stop()
