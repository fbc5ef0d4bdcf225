from __future__ import annotations

import pytest

from tests.e2e.server import Server, served


@pytest.fixture(scope="session")
def server(tiny_v2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """One real server for the e2e tests: tiny DeepSeek-OCR-2, an alias, small limits to test them."""
    log = str(tmp_path_factory.mktemp("logs") / "server.log")
    with served(tiny_v2_dir, log, "--served_model_names", "ocr-alias", "--max_instances", "4",
                       "--max_image_pixels", "20000000", "--max_body_bytes", "8000000",
                       "--default_max_tokens", "64", "--max_images_per_request", "3") as srv:
        yield srv
