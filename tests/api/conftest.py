"""The whole app in-process, built by the same factory as the server, around a loaded tiny model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def app_model(tiny_v2_dir: str):
    from predictor.app import build_app
    from predictor.config import Settings

    settings = Settings(model_dir=tiny_v2_dir, device="cpu", max_batch_size=1, max_queue=0,
                        default_max_tokens=16, max_body_bytes=2_000_000)
    app = build_app(settings)
    model = app.state.model
    model.load()
    yield app, model
    model.stop_engine()
