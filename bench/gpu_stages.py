"""The stages of bench/gpu_check.py. Each takes the shared context and returns a JSON-able dict (or raises).

Stages that need CUDA are not called without it (gpu_check writes ``skipped: no CUDA`` for them).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import torch

# Runtime calls and ops that make the host wait for the device. cudaMemcpyAsync is not one of them (a pinned
# upload returns at once); a pageable device-to-host copy shows up as cudaStreamSynchronize or as
# aten::_local_scalar_dense (.item / .tolist) anyway.
SYNC_NAMES = frozenset({"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy",
                        "aten::_local_scalar_dense", "aten::nonzero", "aten::item"})


# ---- attention -------------------------------------------------------------------------------------------------

def sdpa_default(ctx: dict[str, Any]) -> dict[str, Any]:
    """The backend torch picks by default (cuDNN allowed) for engine-shaped calls, via ``torch._fused_sdp_choice``."""
    from predictor.engine.sdpa import backend_name

    device, dtype, tiny = ctx["device"], ctx["dtype"], ctx["tiny"]
    heads, head_dim, span, rows = (2, 16, 64, 4) if tiny else (10, 128, 2048, 32)
    torch.backends.cuda.enable_cudnn_sdp(True)
    q, k, v, mask = decode_tensors(rows, heads, span, head_dim, device, dtype)
    sam_heads, sam_tokens, sam_dim = (2, 64, 16) if tiny else (12, 4096, 64)
    sq = torch.zeros(1, sam_heads, sam_tokens, sam_dim, device=device, dtype=dtype)
    sam_bias = torch.zeros(1, sam_heads, sam_tokens, sam_tokens, device=device, dtype=dtype)  # rel-pos bias
    win = torch.zeros(25, sam_heads, 196 if not tiny else 16, sam_dim, device=device, dtype=dtype)
    win_bias = torch.zeros(25, sam_heads, win.shape[2], win.shape[2], device=device, dtype=dtype)
    return {"torch_has_fused_sdp_choice": hasattr(torch, "_fused_sdp_choice"),
            "decode_masked_strided": backend_name(q, k, v, mask),
            "prefill_causal": backend_name(sq, sq, sq, None, is_causal=True),
            "sam_global_with_bias": backend_name(sq, sq, sq, sam_bias),
            "sam_window_with_bias": backend_name(win, win, win, win_bias)}


def decode_tensors(rows: int, heads: int, span: int, head_dim: int, device: str, dtype: Any) -> tuple:
    """Decode attention as the engine calls it: one query, K/V strided views of a wider slot buffer, additive mask."""
    columns = -(-(span + 1) // 256) * 256
    keys = torch.randn(rows, heads, columns, head_dim, device=device, dtype=dtype)
    values = torch.randn(rows, heads, columns, head_dim, device=device, dtype=dtype)
    query = torch.randn(rows, heads, 1, head_dim, device=device, dtype=dtype)
    mask = torch.zeros(rows, 1, 1, span, device=device, dtype=dtype)
    mask[:, :, :, span // 2:].fill_(torch.finfo(dtype).min)
    return query, keys[:, :, :span], values[:, :, :span], mask


def decode_attention(ctx: dict[str, Any]) -> dict[str, Any]:
    """First-call and steady time of decode attention at spans 2048/2049/2050, cuDNN on and off: a span the plan
    cache has not seen shows as a slow first call with cuDNN on."""
    from predictor.engine.sdpa import backend_name

    out: dict[str, Any] = {}
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for cudnn in (True, False):
        torch.backends.cuda.enable_cudnn_sdp(cudnn)
        runs = {}
        for span in (2048, 2049, 2050):
            q, k, v, mask = decode_tensors(32, 10, span, 128, ctx["device"], ctx["dtype"])
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            sdpa(q, k, v, attn_mask=mask)
            torch.cuda.synchronize()
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(50):
                sdpa(q, k, v, attn_mask=mask)
            torch.cuda.synchronize()
            runs[str(span)] = {"backend": backend_name(q, k, v, mask), "first_ms": round(first * 1e3, 3),
                               "steady_us": round((time.perf_counter() - t0) / 50 * 1e6, 1)}
        out["cudnn_on" if cudnn else "cudnn_off"] = runs
    torch.backends.cuda.enable_cudnn_sdp(False)
    return out


# ---- the engine ------------------------------------------------------------------------------------------------

def make_engine(family: Any, device: str, rows: int, graphs: str = "off") -> Any:
    """A started engine; ``graphs``: off (eager), auto (CUDA graphs where their checks pass, graph_setup.py) or
    padded (the padded-bucketed forward graphs replay, run eagerly: what CPU can run of the graph path)."""
    from predictor.engine.config import EngineConfig
    from predictor.engine.engine import Engine

    config = EngineConfig(max_batch_size=rows, max_batch_tokens=rows * 4096, max_queue=10**4,
                          request_timeout=3600, max_prefill_batch=4, padded_decode=graphs == "padded",
                          cuda_graphs="off" if graphs == "padded" else graphs)
    engine = Engine(family, device, config=config)
    engine.start()
    return engine


def decode_used(engine: Any) -> str:
    """The start-up decision on CUDA graphs and the forward the engine runs (graph_setup.py)."""
    return f"{engine.worker.graphs.reason}; forward: {engine.worker.forward.describe()}"


def graph_setting(device: str) -> tuple[str, str]:
    """The engine setting for "graphs on" on this device, and what it runs."""
    if device.startswith("cuda"):
        return "auto", "CUDA graphs where the start-up checks pass (see decode)"
    return "padded", f"CUDA graphs unavailable on {device}: the padded-bucketed forward they replay, run eagerly"


def experts_plan(ctx: dict[str, Any]) -> dict[str, Any]:
    """The MoE experts plan, probed and installed by the function the server's loading calls (ocr/runtime.py),
    so that the stages after this one run with what the server would run."""
    from predictor.engine import experts

    if not str(ctx["device"]).startswith("cuda"):
        return {"skipped": "no CUDA: the server probes experts on CUDA only"}
    plan = experts.probe_and_install(ctx["family"].model, decode_mask=ctx["family"].decode_mask)
    return {"plan": None} if plan is None else {"plan": plan.describe(), "results": plan.results}


def prompts(family: Any, n: int) -> list[Any]:
    from bench.bench_batching import pages
    from predictor.families.base import ImageOptions

    return [family.prepare(image, "<image>\nFree OCR.", ImageOptions()) for image in pages(n)]


def generate(engine: Any, prepared: list[Any], tokens: int, concurrency: int) -> dict[str, Any]:
    """Run ``prepared`` through the engine ``concurrency`` at a time, ``tokens`` each; tokens/s over the wall."""
    from predictor.engine.types import SamplingParams

    params = SamplingParams(max_new_tokens=tokens, min_new_tokens=tokens, ngram_size=30, ngram_window=90)

    async def run() -> list[list[int]]:
        gate = asyncio.Semaphore(concurrency)

        async def one(p: Any) -> list[int]:
            async with gate, engine.slot():
                return (await engine.generate(copy.copy(p), params)).token_ids
        return await asyncio.gather(*(one(p) for p in prepared))

    engine.stats.take_steps()
    t0 = time.perf_counter()
    ids = asyncio.run(run())
    wall = time.perf_counter() - t0
    generated = sum(len(x) for x in ids)
    return {"requests": len(prepared), "concurrency": concurrency, "generated_tokens": generated,
            "seconds": round(wall, 3), "tokens_per_s": round(generated / wall, 1), "step": engine.stats.take_steps(),
            "token_ids": ids}


def throughput(ctx: dict[str, Any]) -> dict[str, Any]:
    """c=1 and c=N x T tokens, eager with cuDNN attention off and on, and with CUDA graphs (cuDNN off, the
    server's default), each engine warmed up at the full batch first."""
    family, device, tiny = ctx["family"], ctx["device"], ctx["tiny"]
    rows, tokens = (2, 4) if tiny else (32, 512)
    pages = prompts(family, rows)
    cuda = device.startswith("cuda")
    graphs, graphs_note = graph_setting(device)
    runs = [("cudnn_off", False, "off"), ("cudnn_on", True, "off")] if cuda else [("cudnn_off", False, "off")]
    out: dict[str, Any] = {}
    for key, cudnn, setting in [*runs, ("graphs_on", False, graphs)]:
        if cuda:
            torch.backends.cuda.enable_cudnn_sdp(cudnn)  # before the engine: graphs capture the backend in use
        engine = make_engine(family, device, rows, setting)
        try:
            generate(engine, pages, 8 if not tiny else 2, rows)  # warm-up at the full batch: first-touch costs
            c1 = generate(engine, pages[:1], tokens, 1)
            cn = generate(engine, pages, tokens, rows)
            out[key] = {"c1": _strip(c1), f"c{rows}": _strip(cn), "decode": decode_used(engine),
                        f"speedup_c{rows}_over_c1": round(cn["tokens_per_s"] / c1["tokens_per_s"], 2)}
        finally:
            engine.stop()
            if cuda:
                torch.backends.cuda.enable_cudnn_sdp(False)
    out["graphs_on"]["runs"] = graphs_note
    for c in ("c1", f"c{rows}"):
        out[f"graphs_over_eager_{c}"] = round(out["graphs_on"][c]["tokens_per_s"] /
                                              out["cudnn_off"][c]["tokens_per_s"], 2)
    return out


def _strip(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "token_ids"}


def experts_hit(ctx: dict[str, Any]) -> dict[str, Any]:
    """Distinct routed experts per MoE layer in decode steps at the full batch (routers observed by hooks)."""
    family, tiny = ctx["family"], ctx["tiny"]
    rows, tokens = (2, 4) if tiny else (32, 16)
    seen: dict[str, list[int]] = {}

    def hook(name: str):
        def record(module: Any, args: Any, output: Any) -> None:
            indices = output[-1]
            if indices.shape[0] <= rows:  # decode steps only (a prefill routes every prompt token)
                seen.setdefault(name, []).append(int(torch.unique(indices).numel()))
        return record

    routers = [(n, m) for n, m in family.model.named_modules() if type(m).__name__.endswith("TopkRouter")]
    handles = [m.register_forward_hook(hook(n)) for n, m in routers]
    engine = make_engine(family, ctx["device"], rows)
    try:
        generate(engine, prompts(family, rows), tokens, rows)
    finally:
        engine.stop()
        for h in handles:
            h.remove()
    experts = int(getattr(routers[0][1], "num_experts", 0)) if routers else 0
    return {"rows": rows, "experts_per_layer": experts, "moe_layers": len(routers),
            "distinct_per_layer_max": {n: max(v) for n, v in seen.items()},
            "distinct_mean_all_layers": round(sum(sum(v) for v in seen.values()) /
                                              max(1, sum(len(v) for v in seen.values())), 2)}


def host_syncs(ctx: dict[str, Any]) -> dict[str, Any]:
    """Host waits in one profiled decode step at the full batch (SYNC_NAMES, exact names), plus kernel count."""
    from torch.profiler import ProfilerActivity, profile

    family, device = ctx["family"], ctx["device"]
    rows = 32
    engine = make_engine(family, device, rows)
    worker, step, profiled = engine.worker, engine.worker._step, {}

    def wrapped() -> None:
        if worker.stats.steps == 6 and not profiled:
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                step()
            events = prof.key_averages()
            profiled["rows"] = len(worker.rows)
            profiled["syncs"] = {e.key: e.count for e in events if e.key in SYNC_NAMES}
            profiled["syncs_total"] = sum(profiled["syncs"].values())
            profiled["kernels"] = sum(e.count for e in events if "CUDA" in str(getattr(e, "device_type", "")))
            profiled["cpu_ops"] = sum(e.count for e in events if e.key.startswith("aten::"))
        else:
            step()

    worker._step = wrapped
    try:
        generate(engine, prompts(family, rows), 12, rows)
    finally:
        engine.stop()
    return profiled


def graph_identity(ctx: dict[str, Any]) -> dict[str, Any]:
    """Greedy tokens of the same pages decoded with graphs on (graph_setting) and eager, at a batch that pads
    (5 rows run as 8): identical or not, per request, with the first step that differs."""
    family, device, tiny = ctx["family"], ctx["device"], ctx["tiny"]
    rows, tokens = (5, 6) if tiny else (5, 128)
    pages = prompts(family, rows)
    graphs, note = graph_setting(device)
    ids, decode = {}, {}
    for setting in (graphs, "off"):
        engine = make_engine(family, device, 8, setting)
        try:
            ids[setting] = generate(engine, pages, tokens, rows)["token_ids"]
            decode[setting] = decode_used(engine)
        finally:
            engine.stop()
    pairs = list(zip(ids[graphs], ids["off"], strict=True))
    differ = [next((i for i, (a, b) in enumerate(zip(g, e, strict=False)) if a != b), min(len(g), len(e)))
              for g, e in pairs if g != e]
    return {"runs": note, "decode_with_graphs": decode[graphs], "rows": rows, "tokens": tokens,
            "identical": not differ, "requests_identical": len(pairs) - len(differ),
            "first_differing_step": differ}
