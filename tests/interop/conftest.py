"""One real server (``python -m predictor``, HTTP and gRPC) for the interop tier: client packages that nobody here
wrote, used as their own documentation says, each asserting on the text it got back.

Every client's text is compared with the text of the same request sent as plain KServe v1 JSON: the tiny model is
random, but greedy decoding of one image with one prompt gives one text, whichever protocol carries it.
"""

from __future__ import annotations

import base64
import os

import httpx
import pytest

from tests.conftest import png_bytes
from tests.e2e.server import Server, served

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm fetches a price list at import otherwise

MODEL = "deepseek-ocr"
HUB_ID = "deepseek-ai/DeepSeek-OCR"  # the tiny checkpoint is DeepSeek-OCR's (v1) architecture: vLLM's recipe name
MAX_TOKENS = 8
PNG = png_bytes()
B64 = base64.b64encode(PNG).decode()
DATA_URL = "data:image/png;base64," + B64


# tritonclient and kserve register the same protobuf messages ("inference.ServerLiveRequest") in one descriptor
# pool, so they cannot be imported in one process: test_triton.py runs triton_checks.py in a pytest of its own,
# against this session's server, named here.
SERVER_ENV = "INTEROP_SERVER"


@pytest.fixture(scope="session")
def server(tiny_v1_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    if os.environ.get(SERVER_ENV):
        http_port, grpc_port = (int(p) for p in os.environ[SERVER_ENV].split(","))
        yield Server(process=None, http_port=http_port, grpc_port=grpc_port, log_path="")  # type: ignore[arg-type]
        return
    log = str(tmp_path_factory.mktemp("interop") / "server.log")
    with served(tiny_v1_dir, log, "--default_max_tokens", str(MAX_TOKENS), "--max_batch_size", "2") as srv:
        yield srv


def reference_text(server: Server, prompt: str | None = None, **options) -> str:
    """The text of one PNG over plain KServe v1 JSON, the baseline every client must reproduce."""
    instance = {"image": B64, **({"prompt": prompt} if prompt else {}), **options}
    response = httpx.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [instance]}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["text"]


@pytest.fixture(scope="session")
def expected(server: Server) -> str:
    text = reference_text(server)
    assert text, "the baseline text is empty: nothing to compare with"
    return text


@pytest.fixture(scope="session")
def expected_free_ocr(server: Server) -> str:
    """The baseline with the OpenAI examples' prompt (a chat message's text is the OCR prompt)."""
    return reference_text(server, "Free OCR.")
