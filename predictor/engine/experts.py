"""MoE experts: which implementation runs, chosen per phase by a probe that checks results and times them.

transformers dispatches the decoder's experts through ``config._experts_implementation`` on every call. The
choices cost very differently by size: ``grouped_mm`` is one grouped GEMM, but PyTorch only has its fast kernel
for some compute capabilities and silently falls back elsewhere (a host sync and one matmul per expert);
``batched_mm`` gathers every token-expert pair's weights, fine for a handful of decode rows but
``(rows x top_k, 2I, H)`` per layer for a prefill (tens of GB for one full-size page); ``eager`` loops over the
experts that were hit (a host sync per layer). So we register one dispatcher, ``ocr_phase``, that picks by the
number of token-expert rows in the call: decode batches are small, prefills are large. The plan comes from
``probe``: on the model's own first experts layer (real weights, real layout, transposed or not) it runs each
candidate at 6 / 48 / 192 / 6,000 rows and compares against a per-expert float32 reference; the correct ones are
timed, and the fastest per size kept. Decode sizes are timed inside whole decode forwards of the model with the
candidate in every experts layer (``experts_forward``), since a host sync that looks cheap alone stalls a forward;
prefill sizes alone on the layer. The timings and the chosen plan are logged.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from predictor.engine import experts_dense, experts_forward

log = logging.getLogger(__name__)

SIZES = (6, 48, 192, 6000)
NAME = "ocr_phase"
BATCHED_MM_LIMIT_BYTES = 1 << 30  # never let batched_mm gather more than 1 GiB of expert weights in one call
FORWARD_TOKENS = 256  # a call of at most this many tokens is a decode batch's: timed inside whole decode forwards
FORWARD_REPEATS = 5  # forwards per candidate and size, after one warm-up


@dataclass
class Plan:
    choice: dict[int, str]  # bucket (token-expert rows) -> implementation
    results: dict[int, dict[str, Any]] = field(default_factory=dict)  # bucket -> per-candidate error and time

    def pick(self, rows: int) -> str:
        for bucket in sorted(self.choice):
            if rows <= bucket:
                return self.choice[bucket]
        return self.choice[max(self.choice)]

    def describe(self) -> str:
        return ", ".join(f"<={b} rows: {self.choice[b]}" for b in sorted(self.choice))

    def timings(self) -> str:
        """Per size, how it was timed and each correct candidate's milliseconds (what the choice rests on)."""
        parts = []
        for rows in sorted(self.results):
            timed = {r.get("timed") for r in self.results[rows].values()} - {None}
            times = " ".join(f"{n}={r['ms']:.3f}" for n, r in self.results[rows].items() if "ms" in r)
            parts.append(f"{rows} rows ({'/'.join(sorted(timed)) or 'untimed'}, ms): {times or 'none correct'}")
        return "; ".join(parts)


_PLAN: Plan | None = None
_INSTALLED: dict[str, Any] = {}  # the candidates' functions, looked up once at install


def find_experts(model: Any) -> Any | None:
    """The first experts module that transformers dispatches by implementation name."""
    for module in model.modules():
        if hasattr(module, "gate_up_proj") and hasattr(module, "is_transposed") and hasattr(module, "has_gate"):
            return module
    return None


def _candidates() -> dict[str, Any]:
    from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

    names = [name for name in ("grouped_mm", "batched_mm") if name in ALL_EXPERTS_FUNCTIONS]
    found = {name: ALL_EXPERTS_FUNCTIONS[name] for name in names}
    found["eager"] = lambda module, *args: type(module).forward.__wrapped__(module, *args)
    found[experts_dense.NAME] = experts_dense.dense_experts_forward
    return found


def reference(module: Any, hidden: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Experts in float32, one expert at a time, straight from the weight layout (the yardstick)."""
    up_w, down_w = module.gate_up_proj.float(), module.down_proj.float()
    x = hidden.float()
    out = torch.zeros_like(x)
    for expert in index.unique().tolist():
        token, slot = torch.where(index == expert)
        up = x[token] @ (up_w[expert] if module.is_transposed else up_w[expert].T)
        act = module._apply_gate(up) if module.has_gate else module.act_fn(up)
        down = act @ (down_w[expert] if module.is_transposed else down_w[expert].T)
        out.index_add_(0, token, down * weights[token, slot, None].float())
    return out


def _inputs(module: Any, rows: int, top_k: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    device, dtype = module.gate_up_proj.device, module.gate_up_proj.dtype
    tokens = max(1, rows // top_k)
    hidden_dim = module.down_proj.shape[2] if module.is_transposed else module.down_proj.shape[1]
    hidden = torch.randn(tokens, hidden_dim, generator=generator, device="cpu").to(device, dtype)
    scores = torch.rand(tokens, module.num_experts, generator=generator)
    top = scores.topk(top_k, dim=-1)
    weights = torch.softmax(top.values, dim=-1).to(device, dtype)
    return hidden, top.indices.to(device), weights


def _time(fn: Any, args: tuple[Any, ...], device: torch.device, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn(*args)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def _gathered_bytes(module: Any, rows: int) -> int:
    per_row = module.gate_up_proj[0].numel() + module.down_proj[0].numel()
    return rows * per_row * module.gate_up_proj.element_size()


@torch.inference_mode()
def probe(model: Any, sizes: tuple[int, ...] = SIZES, top_k: int | None = None,
          decode_mask: Callable[[Any], Any] | None = None) -> Plan | None:
    """Measure each candidate at each size on this device; None when the model has no dispatchable experts.

    ``decode_mask``: the family's (``ModelFamily.decode_mask``), for the decode forwards the small sizes are timed in.
    """
    module = find_experts(model)
    if module is None:
        return None
    text_config = getattr(model.config, "text_config", model.config)
    top_k = top_k or int(getattr(text_config, "num_experts_per_tok", 6))
    generator = torch.Generator().manual_seed(0)
    candidates = _candidates()
    plan = Plan({})
    for rows in sizes:
        hidden, index, weights = _inputs(module, rows, top_k, generator)
        results = _check(module, candidates, hidden, index, weights)
        tokens = hidden.shape[0]
        if tokens <= FORWARD_TOKENS:
            _time_in_forwards(model, candidates, results, (module, hidden, index, weights), generator, decode_mask)
        else:
            # A prefill-sized call is dominated by its GEMMs (hundreds of rows per expert): a host sync more or less
            # per layer is noise beside them, and a forward at this size would cost a prefill-sized batch at start-up.
            _time_alone(candidates, results, (module, hidden, index, weights))
        good = {n: r["ms"] for n, r in results.items() if r.get("ok") and "ms" in r}
        plan.results[rows] = results
        plan.choice[rows] = min(good, key=good.__getitem__) if good else "eager"
    return plan


def _check(module: Any, candidates: dict[str, Any], hidden: torch.Tensor, index: torch.Tensor,
           weights: torch.Tensor) -> dict[str, dict[str, Any]]:
    """Each candidate's result on one layer against the float32 reference (``ok`` within tolerance), or why not."""
    expected = reference(module, hidden, index, weights)
    scale = expected.abs().max().item() + 1e-6
    tolerance = 1e-3 if module.gate_up_proj.dtype == torch.float32 else 3e-2
    results: dict[str, dict[str, Any]] = {}
    for name, fn in candidates.items():
        if name == "batched_mm" and _gathered_bytes(module, index.numel()) > BATCHED_MM_LIMIT_BYTES:
            results[name] = {"skipped": "would gather more than 1 GiB of weights"}
        elif name == experts_dense.NAME and not experts_dense.fits(module, hidden.shape[0]):
            results[name] = {"skipped": "all-experts activations past experts_dense.LIMIT_BYTES"}
        else:
            try:
                error = (fn(module, hidden, index, weights).float() - expected).abs().max().item() / scale
            except Exception as exc:  # noqa: BLE001 - a candidate that fails is simply not chosen
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
                continue
            results[name] = {"rel_error": error, "ok": error <= tolerance}
    return results


def _time_in_forwards(model: Any, candidates: dict[str, Any], results: dict[str, dict[str, Any]],
                      args: tuple[Any, ...], generator: torch.Generator,
                      decode_mask: Callable[[Any], Any] | None) -> None:
    """Each correct candidate's time per whole decode forward of as many rows as ``args`` has tokens
    (``experts_forward``)."""
    tokens = args[1].shape[0]
    try:
        batch = experts_forward.decode_batch(model, tokens, generator, candidates["eager"], decode_mask)
    except Exception as exc:  # noqa: BLE001 - timing alone still ranks the candidates; the log says why
        log.warning("experts probe: no decode forward at %d rows (%s: %s); timing each candidate alone", tokens,
                    type(exc).__name__, exc)
        _time_alone(candidates, results, args)
        return
    for name, result in results.items():
        if not result.get("ok"):
            continue
        try:
            seconds = experts_forward.time_forwards(batch, candidates[name], FORWARD_REPEATS)
        except Exception as exc:  # noqa: BLE001 - right alone but failing in a forward: not chosen
            result.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:200])
            continue
        result.update(ms=seconds * 1e3, timed="forward")


def _time_alone(candidates: dict[str, Any], results: dict[str, dict[str, Any]], args: tuple[Any, ...]) -> None:
    for name, result in results.items():
        if result.get("ok"):
            result.update(ms=_time(candidates[name], args, args[1].device) * 1e3, timed="alone")


def probe_and_install(model: Any, sizes: tuple[int, ...] = SIZES,
                      decode_mask: Callable[[Any], Any] | None = None) -> Plan | None:
    """Measure, then route the model's experts through the plan: done once, by loading (``load_runtime``), and by
    ``bench/gpu_check.py``. None when the model has no dispatchable experts."""
    plan = probe(model, sizes, decode_mask=decode_mask)
    if plan is not None:
        log.info("MoE experts probe: %s", plan.timings())
        install(model, plan)
    return plan


def _dispatch(module: Any, hidden: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    name = _PLAN.pick(index.numel()) if _PLAN is not None else "eager"
    return _INSTALLED[name](module, hidden, index, weights)


def install(model: Any, plan: Plan) -> None:
    """Route every experts call of ``model`` through the plan (one process serves one model)."""
    from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

    global _PLAN
    _INSTALLED.update(_candidates())
    _PLAN = plan
    ALL_EXPERTS_FUNCTIONS.register(NAME, _dispatch)
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(module, "has_gate"):
            config._experts_implementation = NAME
    log.info("MoE experts per phase: %s", plan.describe())
