"""The device check, built so that one run cannot be wasted (bench/gpu_check.sh runs it in one command).

    bash bench/gpu_check.sh                    # on the GPU machine: carried wheels installed, results in $OUT
    python bench/gpu_check.py --out DIR        # CUDA, full-size DeepSeek-OCR v1 architecture, random bf16 weights
    python bench/gpu_check.py --tiny --out DIR # CPU, tiny checkpoint and shapes: the test that keeps this working

Versions are asserted first (transformers >= 5.24 and the modules the check imports), naming the wheels to carry
when something is missing, before any model is built. Every stage writes ``DIR/<stage>.json`` the moment it
finishes (``{"stage", "ok", "seconds", "result" | "error" | "skipped"}``), so a late failure or a timeout still
leaves every earlier result; a stage that needs CUDA writes ``skipped: no CUDA`` without one. Stages stop being
started once ``--budget`` seconds have passed (they then write ``skipped: time budget``). docs/PERFORMANCE.md
lists the wheels to carry and how to read the results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

MIN_TRANSFORMERS = (5, 24)
# What the check imports beyond torch; each missing one is named with the wheel to carry.
NEEDED = {"transformers": "transformers==5.24.0", "PIL": "pillow", "prometheus_client": "prometheus-client",
          "tokenizers": "tokenizers", "safetensors": "safetensors", "numpy": "numpy"}
STAGES = ("versions", "sdpa_default", "decode_attention", "experts_hit", "experts_plan", "host_syncs",
          "throughput", "graph_identity")
NEEDS_CUDA = {"decode_attention", "host_syncs"}


class VersionError(RuntimeError):
    pass


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def versions(ctx: dict[str, Any]) -> dict[str, Any]:
    """Versions and importability; raises ``VersionError`` naming the wheels to carry when the check cannot run."""
    import importlib

    out: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
                           "cuda_available": torch.cuda.is_available(), "missing": {}}
    for module, wheel in NEEDED.items():
        try:
            out[module] = getattr(importlib.import_module(module), "__version__", "present")
        except ImportError as exc:
            out["missing"][module] = f"carry {wheel} ({exc})"
    if "transformers" in out and _version_tuple(out["transformers"]) < MIN_TRANSFORMERS:
        out["missing"]["transformers"] = (f"transformers {out['transformers']} is older than "
                                          f"{'.'.join(map(str, MIN_TRANSFORMERS))}: carry transformers==5.24.0 "
                                          "(py3-none-any wheel, docs/PERFORMANCE.md)")
    if torch.cuda.is_available():
        out.update(device_name=torch.cuda.get_device_name(), arch_list=torch.cuda.get_arch_list(),
                   capability=".".join(map(str, torch.cuda.get_device_capability())),
                   cudnn=torch.backends.cudnn.version(),
                   memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    if out["missing"]:
        raise VersionError(json.dumps(out["missing"]))
    for module in ("predictor.engine.engine", "predictor.families.fused", "bench.full_size"):
        importlib.import_module(module)  # an import error here names the package (and wheel) missing
    return out


def load(ctx: dict[str, Any]) -> None:
    """The model every later stage uses: full size on CUDA, the tiny checkpoint with ``--tiny``."""
    if ctx["tiny"]:
        from predictor.families.base import LoadSettings
        from predictor.families.v1 import DeepseekOcrV1Family
        from predictor.families.v2 import DeepseekOcr2Family
        from predictor.testing.tiny import build

        family = DeepseekOcr2Family() if ctx["which"] == "v2" else DeepseekOcrV1Family()
        family.load(build(tempfile.mkdtemp(prefix="gpu-check-tiny-"), ctx["which"]),
                    LoadSettings(ctx["device"], ctx["dtype"], "sdpa", None))
    else:
        from bench.full_size import full_size_family

        family = full_size_family(ctx["which"], ctx["device"])[0]
    ctx["family"] = family


def run_stage(name: str, fn: Callable[[dict[str, Any]], Any], ctx: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    record: dict[str, Any] = {"stage": name}
    if name in NEEDS_CUDA and not ctx["device"].startswith("cuda"):
        record.update(ok=True, skipped="no CUDA")
    elif time.perf_counter() - ctx["started"] > ctx["budget"]:
        record.update(ok=False, skipped="time budget")
    else:
        try:
            record.update(ok=True, result=fn(ctx))
        except Exception as exc:  # noqa: BLE001 - a failed stage is a result; the next stages still run
            record.update(ok=False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-3000:])
    record["seconds"] = round(time.perf_counter() - started, 2)
    path = os.path.join(ctx["out"], f"{name}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, default=str, indent=1)
    print(json.dumps({"stage": name, "ok": record["ok"], "seconds": record["seconds"],
                      **({"skipped": record["skipped"]} if "skipped" in record else {}),
                      **({"error": record["error"]} if "error" in record else {})}), flush=True)
    return record


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench import gpu_stages

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny checkpoint and shapes")
    parser.add_argument("--family", choices=("v1", "v2"), default="v1")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="stage files (default $OUT)")
    parser.add_argument("--budget", type=float, default=400.0, help="seconds after which no stage starts")
    args = parser.parse_args(argv)
    device = args.device or ("cpu" if args.tiny else "cuda")
    os.makedirs(args.out, exist_ok=True)
    ctx: dict[str, Any] = {"tiny": args.tiny, "which": args.family, "device": device, "out": args.out,
                           "dtype": torch.float32 if device == "cpu" else torch.bfloat16,
                           "started": time.perf_counter(), "budget": args.budget}
    results = {"versions": run_stage("versions", versions, ctx)}
    if not results["versions"]["ok"]:
        return results  # nothing else can run: versions.json names what to carry
    functions = {name: getattr(gpu_stages, name) for name in STAGES[1:]}
    loaded = run_stage("load", load, ctx)
    for name in STAGES[1:]:
        if not loaded["ok"]:
            functions[name] = _not_loaded
        results[name] = run_stage(name, functions[name], ctx)
    results["load"] = loaded
    return results


def _not_loaded(ctx: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("the model did not load (load.json)")


if __name__ == "__main__":
    sys.exit(0 if all(r["ok"] for r in main().values()) else 1)
