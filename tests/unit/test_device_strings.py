"""Device strings: cuda:N is accepted and checked as such; nothing compares a device to the bare string "cuda"."""

from __future__ import annotations

import pathlib
import re

import pytest

from predictor.config import Settings, validate
from predictor.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]
BARE = re.compile(r'(?<!\.type) [!=]= "cuda"')  # torch.device(...).type == "cuda" is right for cuda:N too


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cpu:0"])
def test_malformed_devices_are_refused_naming_the_flag(device):
    with pytest.raises(ConfigError, match="--device"):
        validate(Settings(device=device))


def test_cuda_n_without_cuda_names_the_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="--device cuda:1 was requested"):
        validate(Settings(device="cuda:1"))


def test_no_code_tests_device_equal_to_bare_cuda():
    offenders = [f"{path}:{n}" for path in (ROOT / "predictor").rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if BARE.search(line) or "current_stream()" in line]
    assert offenders == []
