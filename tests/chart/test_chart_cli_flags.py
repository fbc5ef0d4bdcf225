"""Every flag the chart passes to `python -m predictor` exists in the server's own CLI.

Uses the Python that has the predictor's dependencies (PREDICTOR_PYTHON, default python3 on PATH; scripts/chart-test.sh
sets it to the python3 found before .venv-chart/); skipped where that Python cannot import the predictor.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

import chart_manifests as manifests
import pytest
from chart_helpers import container


@functools.cache
def server_flags() -> frozenset[str]:
    python = os.environ.get("PREDICTOR_PYTHON") or shutil.which("python3") or "python3"
    proc = subprocess.run(
        [python, "-m", "predictor", "--help"], cwd=manifests.ROOT, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        pytest.skip(f"{python} cannot run the predictor CLI: {proc.stderr.strip().splitlines()[-1:]}")
    return frozenset(re.findall(r"(?<![\w-])--([a-zA-Z][\w-]*)", proc.stdout))


@pytest.mark.parametrize(
    "variant", [None, *sorted(p.name for p in (manifests.CHART / "ci").glob("*.yaml"))], ids=lambda v: v or "defaults"
)
def test_chart_args_are_server_flags(variant):
    flags = server_flags()
    assert {"model_name", "http_port", "max_batch_size"} <= flags, sorted(flags)
    docs = manifests.render(*([manifests.CHART / "ci" / variant] if variant else []))
    unknown = [a for a in container(docs)["args"] if a.startswith("--") and a[2:].split("=", 1)[0] not in flags]
    assert not unknown, f"flags the server does not know: {unknown}"
