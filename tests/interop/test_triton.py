"""tritonclient's checks (triton_checks.py) in a pytest process of their own, against this session's server:
tritonclient and kserve define the same protobuf messages and cannot be imported into one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.interop.conftest import SERVER_ENV

CHECKS = Path(__file__).with_name("triton_checks.py")
ROOT = Path(__file__).resolve().parents[2]


def test_tritonclient(server):
    env = {**os.environ, SERVER_ENV: f"{server.http_port},{server.grpc_port}"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(CHECKS)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout, result.stdout[-3000:]
    print(result.stdout[-2500:])  # which tritonclient checks ran, in the tier's log
