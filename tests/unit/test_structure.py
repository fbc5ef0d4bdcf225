"""Rules about where things live, checked on the source."""

from __future__ import annotations

import pathlib

import torch

from predictor.families import base

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "predictor"
FAMILY_INPUT_NAMES = ("pixel_values", "num_local_patches", "patches_grid", "images_spatial_crop")


def _sources(exclude: str | None = None):
    for path in sorted(PACKAGE.rglob("*.py")):
        if exclude is None or exclude not in path.relative_to(PACKAGE).parts:
            yield path, path.read_text(encoding="utf-8")


def test_only_families_know_their_input_names():
    offenders = [f"{path.name}: {name}" for path, text in _sources(exclude="families")
                 for name in FAMILY_INPUT_NAMES if name in text]
    assert offenders == []



def test_weights_load_straight_to_a_gpu_when_transformers_can(monkeypatch):
    settings = base.LoadSettings("cuda:0", torch.bfloat16, "sdpa", "grouped_mm")
    monkeypatch.setattr(base, "_has_accelerate", lambda: True)
    kwargs = base.load_kwargs(settings)
    assert kwargs["device_map"] == {"": "cuda:0"} and kwargs["experts_implementation"] == "grouped_mm"
    monkeypatch.setattr(base, "_has_accelerate", lambda: False)  # transformers needs accelerate for device_map
    assert "device_map" not in base.load_kwargs(settings)
    assert "device_map" not in base.load_kwargs(base.LoadSettings("cpu", torch.float32, "sdpa", None))
