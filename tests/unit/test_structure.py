"""Rules about where things live, checked on the source."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

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


# ---- layering (docs/ARCHITECTURE.md "Layers") --------------------------------------------------------------------

# Each unit of the package may import (at any point: module level or inside a function) only units of a lower rank.
RANKS = {"constants": 0, "errors": 0, "config": 1, "families": 2, "testing": 3, "engine": 3, "ocr": 4,
         "server": 5, "protocols": 6, "app": 7, "__main__": 8, "ray_serve": 8, "client": 8}
WEB_LIBRARIES = ("fastapi", "starlette", "kserve", "openai")


def _unit(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py")


def _imports(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def _imported_units(path: pathlib.Path) -> set[str]:
    return {m.split(".")[1] for m in _imports(path) if m.startswith("predictor.")} - {_unit(path)}


def test_every_unit_has_a_rank():
    units = {_unit(path) for path in PACKAGE.rglob("*.py")} - {"__init__"}
    assert units <= RANKS.keys(), f"give these a rank (and a line in docs/ARCHITECTURE.md): {units - RANKS.keys()}"


def test_imports_only_go_down_the_layers():
    upward = [f"{path.relative_to(PACKAGE)} imports predictor.{unit}" for path, _ in _sources()
              for unit in _imported_units(path) if _unit(path) != "__init__" and RANKS[unit] >= RANKS[_unit(path)]]
    assert upward == []


def test_the_ocr_domain_knows_no_web_framework():
    """ocr/, engine/ and families/ serve any protocol: no fastapi, starlette, kserve or openai in them."""
    offenders = [f"{path.relative_to(PACKAGE)}: {module}" for path, _ in _sources()
                 if _unit(path) in ("ocr", "engine", "families")
                 for module in _imports(path) if module.split(".")[0] in WEB_LIBRARIES]
    assert offenders == []


def test_server_plumbing_knows_no_ocr():
    offenders = [f"{path.relative_to(PACKAGE)}: predictor.{unit}" for path, _ in _sources()
                 if _unit(path) == "server" for unit in _imported_units(path)
                 if unit in ("ocr", "engine", "families")]
    assert offenders == []


def test_the_top_level_stays_small():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 6, modules


def test_the_batch_client_imports_without_torch():
    """Every module of the client, and the facts it shares with the server, import without torch (the client is
    installed where no model runs). Checked in a fresh interpreter, where nothing has loaded torch yet."""
    modules = sorted(f"predictor.client.{p.stem}" for p in (PACKAGE / "client").glob("*.py") if p.stem != "__main__")
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules + ["predictor.constants"]) +
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]" and len(modules) >= 8, (modules, result.stdout)


def test_weights_load_straight_to_a_gpu_when_transformers_can(monkeypatch):
    settings = base.LoadSettings("cuda:0", torch.bfloat16, "sdpa", "grouped_mm")
    monkeypatch.setattr(base, "_has_accelerate", lambda: True)
    kwargs = base.load_kwargs(settings)
    assert kwargs["device_map"] == {"": "cuda:0"} and kwargs["experts_implementation"] == "grouped_mm"
    monkeypatch.setattr(base, "_has_accelerate", lambda: False)  # transformers needs accelerate for device_map
    assert "device_map" not in base.load_kwargs(settings)
    assert "device_map" not in base.load_kwargs(base.LoadSettings("cpu", torch.float32, "sdpa", None))
