"""The device check: one script, one JSON line, for the first GPU this project gets (under 5 minutes on one GPU).

    python bench/gpu_check.py                 # CUDA, full-size DeepSeek-OCR v1 architecture, random bf16 weights
    python bench/gpu_check.py --family v2
    python bench/gpu_check.py --tiny          # CPU, tiny checkpoint, tiny shapes: the test that keeps this working

It reports: torch / CUDA versions and the arch list; device capability; which SDPA backend runs for the decoder's
decode shape and for SAM's global and windowed attention; the MoE experts probe (each implementation against a
per-expert float32 reference, correctness and time at 6 / 48 / 192 / 6,000 token-expert rows, and the plan the
engine installs); a profiler summary of one decode step at batch 32 (kernels, syncing calls, device time);
memory reserved vs allocated after 500 decode steps; and the engine's throughput at concurrency 1 / 8 / 32.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

# Ops and runtime calls that make the host wait for the device.
SYNC_NAMES = ("aten::_local_scalar_dense", "aten::nonzero", "aten::item", "cudaStreamSynchronize",
              "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy ")


def versions() -> dict[str, Any]:
    import transformers

    out: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__,
                           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        out.update(arch_list=torch.cuda.get_arch_list(), device_name=torch.cuda.get_device_name(),
                   capability=".".join(map(str, torch.cuda.get_device_capability())),
                   memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    return out


def sdpa_backends(device: str, dtype: torch.dtype, tiny: bool) -> dict[str, Any]:
    """For each shape: which backends run, and which one PyTorch picks by default."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    shapes = {  # (batch, heads, q, kv, head_dim, boolean padding mask)
        "decoder_decode_b32": (32, 10, 1, 2048, 128, True),
        "sam_global_attention": (1, 12, 4096, 4096, 64, False),
        "sam_window_attention": (25, 12, 196, 196, 64, False),
    }
    if tiny:
        shapes = {k: (min(b, 4), 2, min(q, 64), min(kv, 64), 16, m) for k, (b, _, q, kv, _, m) in shapes.items()}
    out: dict[str, Any] = {}
    for name, (b, h, q, kv, d, masked) in shapes.items():
        qt = torch.randn(b, h, q, d, device=device, dtype=dtype)
        kt, vt = torch.randn(b, h, kv, d, device=device, dtype=dtype), torch.randn(b, h, kv, d, device=device,
                                                                                  dtype=dtype)
        mask = torch.ones(b, 1, q, kv, dtype=torch.bool, device=device) if masked else None
        runs = {}
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                        SDPBackend.MATH):
            try:
                with sdpa_kernel([backend]):
                    torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask)
                runs[backend.name] = "ok"
            except Exception as exc:  # noqa: BLE001 - unsupported here: record why
                runs[backend.name] = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        default = None
        if hasattr(torch._C, "_fused_sdp_choice"):
            try:
                default = SDPBackend(torch._fused_sdp_choice(qt, kt, vt, mask, 0.0, False)).name
            except Exception:  # noqa: BLE001 - private API: best effort
                default = None
        out[name] = {"default": default, "backends": runs}
    return out


def experts_probe(model: Any, tiny: bool) -> dict[str, Any] | None:
    from predictor.engine import experts

    # the function loading uses on CUDA (ocr/runtime.py): the decode profile and the bench run with its plan
    plan = experts.probe_and_install(model, sizes=(6, 48) if tiny else experts.SIZES)
    if plan is None:
        return None
    return {"plan": plan.describe(), "results": plan.results}


def _requests(family: Any, rows: int, tokens: int) -> list[Any]:
    from bench.bench_batching import pages
    from predictor.engine.types import GenerationRequest, SamplingParams
    from predictor.families.base import ImageOptions

    params = SamplingParams(max_new_tokens=tokens, min_new_tokens=tokens, ngram_size=30, ngram_window=90)
    out = []
    for image in pages(rows):
        prepared = family.prepare(image, "<image>\nFree OCR.", ImageOptions())
        out.append(GenerationRequest(prepared=prepared, params=params))  # no event loop: results are dropped
    return out


def _fill(worker: Any, rows: int) -> None:
    deadline = time.monotonic() + 600
    while len(worker.rows) < rows and time.monotonic() < deadline:
        worker._collect(block=False)
        worker._admit()
        worker._merge_prefilled(wait=True)
    if len(worker.rows) < rows:
        raise RuntimeError(f"only {len(worker.rows)} of {rows} rows joined")


def decode_profile(family: Any, device: str, rows: int, steps: int) -> dict[str, Any]:
    """Drive the engine's worker in this thread: ``rows`` rows decoding, one step profiled, ``steps`` steps run."""
    from torch.profiler import ProfilerActivity, profile

    from predictor.engine.config import EngineConfig
    from predictor.engine.stats import EngineStats
    from predictor.engine.worker import Worker

    config = EngineConfig(max_batch_size=rows, max_batch_tokens=10**8, max_prefill_batch=4)
    worker = Worker(family, device, config=config, stats=EngineStats(device))
    for request in _requests(family, rows, steps + 20):
        worker.submit(request)
    _fill(worker, rows)
    for _ in range(3):
        worker._step()  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        worker._step()
    events = prof.key_averages()
    kernels = [e for e in events if getattr(e, "device_type", None) is not None and "CUDA" in str(e.device_type)]
    syncs = {e.key: e.count for e in events if any(e.key.startswith(n.strip()) for n in SYNC_NAMES)}
    summary = {"rows": len(worker.rows), "cpu_ops": sum(e.count for e in events),
               "kernels": sum(e.count for e in kernels), "syncing_calls": syncs,
               "device_ms": sum(getattr(e, "self_device_time_total", 0) for e in events) / 1e3,
               "top_ops": [(e.key, e.count, round(e.self_cpu_time_total / 1e3, 3))
                           for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]]}
    worker.stats.take_steps()
    start = time.perf_counter()
    for _ in range(steps):
        worker._step()
    summary["steps"] = steps
    summary["step_ms"] = 1e3 * (time.perf_counter() - start) / steps
    summary["split"] = worker.stats.take_steps()
    if device.startswith("cuda"):
        summary["memory_gib"] = {"allocated": torch.cuda.memory_allocated() / 2**30,
                                 "reserved": torch.cuda.memory_reserved() / 2**30,
                                 "max_allocated": torch.cuda.max_memory_allocated() / 2**30}
    summary["kv_cache"] = {"slots": worker.batch.slot_capacity, "columns": worker.batch.columns}
    worker.prefiller.shutdown()
    return summary


def throughput(family: Any, device: str, levels: list[int], tokens: int) -> dict[str, Any]:
    from bench.bench_batching import pages, run_level
    from predictor.config import Settings
    from predictor.engine.config import EngineConfig
    from predictor.engine.engine import Engine
    from predictor.ocr.service import OcrService

    engine = Engine(family, device, config=EngineConfig(max_batch_size=max(levels), max_batch_tokens=10**8,
                                                        max_queue=10**4, request_timeout=3600, max_prefill_batch=4))
    engine.start()
    service = OcrService(Settings(device=device, max_batch_size=max(levels), max_new_tokens=8192), family, engine)

    async def run() -> dict[str, Any]:
        await run_level(service, pages(1), 1, 4)  # warm-up
        out: dict[str, Any] = {}
        for level in levels:
            engine.stats.take_steps()
            # concurrency 1 on 4 pages (enough for a rate), the others on one page per slot
            out[f"c{level}"] = await run_level(service, pages(max(level, 4)), level, tokens)
            out[f"c{level}"]["step"] = engine.stats.take_steps()
        for level in levels[1:]:
            out[f"speedup_c{level}_over_c{levels[0]}"] = out[f"c{level}"]["tokens_per_s"] / out[f"c{levels[0]}"][
                "tokens_per_s"]
        return out

    try:
        return asyncio.run(run())
    finally:
        engine.stop()


def load_family(args: argparse.Namespace) -> Any:
    if not args.tiny:
        from bench.full_size import full_size_family

        return full_size_family(args.family, args.device)[0]
    from predictor.families.base import LoadSettings
    from predictor.families.v1 import DeepseekOcrV1Family
    from predictor.families.v2 import DeepseekOcr2Family
    from predictor.testing.tiny import build

    family = DeepseekOcr2Family() if args.family == "v2" else DeepseekOcrV1Family()
    checkpoint = build(tempfile.mkdtemp(prefix="gpu-check-tiny-"), args.family)
    family.load(checkpoint, LoadSettings(args.device, torch.float32, "sdpa", None))
    return family


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: tiny checkpoint and shapes")
    parser.add_argument("--family", choices=("v1", "v2"), default="v1")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--rows", type=int, default=None, help="decode batch to profile (default 32; 4 with --tiny)")
    parser.add_argument("--steps", type=int, default=None, help="decode steps for memory (default 500; 10 --tiny)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=None, help="default 1 8 32 (1 2 --tiny)")
    parser.add_argument("--tokens", type=int, default=None, help="tokens per request in the bench (256; 4 --tiny)")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    rows, steps = args.rows or (4 if args.tiny else 32), args.steps or (10 if args.tiny else 500)
    levels = args.concurrency or ([1, 2] if args.tiny else [1, 8, 32])
    tokens = args.tokens or (4 if args.tiny else 256)
    started = time.perf_counter()
    result: dict[str, Any] = {"check": "gpu_check", "tiny": args.tiny, "family": args.family, "device": args.device}
    result["versions"] = versions()
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
    result["sdpa"] = sdpa_backends(args.device, dtype, args.tiny)
    family = load_family(args)
    with torch.inference_mode():
        result["experts"] = experts_probe(family.model, args.tiny)
    result["decode_step"] = decode_profile(family, args.device, rows, steps)
    result["throughput"] = throughput(family, args.device, levels, tokens)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
