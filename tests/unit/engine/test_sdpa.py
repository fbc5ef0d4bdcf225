"""SDPA backend choice (engine/sdpa.py, --sdpa_cudnn)."""

from __future__ import annotations

import pytest
import torch

from predictor.config import build_parser, settings_from_args
from predictor.engine import sdpa


def test_flag_parses_and_refuses_unknown_values():
    assert settings_from_args(build_parser().parse_args([])).sdpa_cudnn == "auto"
    assert settings_from_args(build_parser().parse_args(["--sdpa_cudnn", "on"])).sdpa_cudnn == "on"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--sdpa_cudnn", "maybe"])
    with pytest.raises(ValueError, match="sdpa_cudnn"):
        sdpa.apply("maybe", "cpu", torch.float32)


def test_backend_names_come_from_torchs_own_choice():
    names = sdpa.chosen_backends("cpu", torch.float32, span=64, rows=2)
    assert set(names) == {"decode", "prefill"}
    valid = {b.name.lower() for b in (torch.nn.attention.SDPBackend.MATH, torch.nn.attention.SDPBackend.FLASH_ATTENTION,
                                      torch.nn.attention.SDPBackend.EFFICIENT_ATTENTION,
                                      torch.nn.attention.SDPBackend.CUDNN_ATTENTION)}
    assert all(name in valid for name in names.values()), names
    assert "no effect on cpu" in sdpa.apply("auto", "cpu", torch.float32)
