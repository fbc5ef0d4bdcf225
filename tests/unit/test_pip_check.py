"""scripts/pip_check.py judges conflicts inside our dependency tree only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pip_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("pip_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_closure_follows_extras_and_transitive_requirements():
    pip_check = _module()
    plain = pip_check.closure(pip_check.PROJECT, set())
    assert {"kserve", "transformers", "protobuf", "pydantic"} <= plain  # protobuf and pydantic come through kserve
    assert "pytest" not in plain
    with_test = pip_check.closure(pip_check.PROJECT, {"test"})
    assert "pytest" in with_test and plain < with_test
