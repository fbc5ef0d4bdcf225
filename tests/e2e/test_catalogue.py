"""CI's run of the bad-input catalogue (tests/e2e/catalogue.py) against a real server: every case is a 4xx naming
the field over OpenAI, KServe v1, v2 REST and v2 gRPC, and the server still serves afterwards. (`make soak` runs
the same catalogue with a good request after every case.)"""

from __future__ import annotations

import pytest

from tests.e2e.catalogue import catalogue, good_request, run_case
from tests.e2e.server import Server, served

CASES = catalogue()


@pytest.fixture(scope="module")
def target(tiny_v2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = str(tmp_path_factory.mktemp("logs") / "catalogue.log")
    with served(tiny_v2_dir, log, "--max_images_per_request", "8", "--max_instances", "16") as srv:
        yield srv


@pytest.mark.parametrize("case", CASES, ids=[f"{c.protocol}: {c.name}" for c in CASES])
def test_bad_input_is_a_4xx_naming_the_field(target, case):
    outcome = run_case(case, target.url, target.grpc_target)
    assert outcome.status == case.status, outcome
    assert outcome.names(case.field), outcome


def test_server_serves_after_the_catalogue(target):
    assert good_request(target.url) == 200
    assert "Traceback" not in target.log()
