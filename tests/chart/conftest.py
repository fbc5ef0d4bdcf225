"""Chart tests: need helm (scripts/install-k8s-tools.sh puts it in .venv-chart/) and kubernetes-validate.

`make chart-test` (scripts/chart-test.sh) installs both and sets CHART_TEST_REQUIRED=1, so a missing tool fails there.
A plain `pytest` in an environment without them skips this directory with a pointer to `make chart-test`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chart_manifests as manifests  # noqa: E402

REQUIRED = os.environ.get("CHART_TEST_REQUIRED") == "1"


def _missing() -> list[str]:
    missing = []
    if manifests.helm_binary() is None:
        missing.append("helm")
    if importlib.util.find_spec("kubernetes_validate") is None:
        missing.append("kubernetes-validate")
    if not manifests.CRD_SCHEMA.exists():
        missing.append(str(manifests.CRD_SCHEMA))
    return missing


def pytest_collection_modifyitems(config, items):
    missing = _missing()
    if not missing:
        return
    here = Path(__file__).resolve().parent
    mine = [i for i in items if here in Path(str(i.fspath)).resolve().parents]
    if REQUIRED:
        raise pytest.UsageError(f"chart tests need {', '.join(missing)} (run scripts/install-k8s-tools.sh)")
    skip = pytest.mark.skip(reason=f"missing {', '.join(missing)}: run `make chart-test`")
    for item in mine:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def ci_values() -> list[Path]:
    files = sorted((manifests.CHART / "ci").glob("*.yaml"))
    assert len(files) >= 8, files
    return files
