"""The batch client against a server that holds one request and queues one: everything else gets 429."""

from __future__ import annotations

import pytest

from tests.e2e.client_helpers import check_complete, make_images, metric, run_client, summary_count
from tests.e2e.server import Server, served


@pytest.fixture(scope="module")
def small_server(tiny_v2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = str(tmp_path_factory.mktemp("logs") / "small-server.log")
    with served(tiny_v2_dir, log, "--max_batch_size", "1", "--max_queue", "1") as srv:
        yield srv


def test_concurrency_8_succeeds_through_retries_and_counts_them(small_server, tmp_path):
    inputs = make_images(tmp_path / "in", 8)
    rejected = 'deepseek_ocr_requests_rejected_total{reason="queue_full"}'
    before = metric(small_server.url, rejected)
    result = run_client("--url", small_server.url, "--concurrency", "8", "--max-tokens", "8", "-o",
                        str(tmp_path / "out"), str(tmp_path / "in"))
    assert result.returncode == 0, result.stderr
    assert summary_count(result.stderr, "done") == 8 and summary_count(result.stderr, "failed") == 0
    retries = summary_count(result.stderr, "retries")
    refused = metric(small_server.url, rejected) - before
    assert retries > 0 and retries == refused  # every 429 the server sent was retried, and counted once
    for path in inputs:
        check_complete(tmp_path / "out", path.stem)
