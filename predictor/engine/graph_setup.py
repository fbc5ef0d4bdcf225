"""``--cuda_graphs auto|on|off``: whether decode runs from CUDA graphs, decided at start-up, before serving.

A wrong answer must never be the price of speed, and this path cannot be tested without a GPU, so graphs are used
only when every check passes on the device itself:

1. the device is CUDA;
2. the decode forward is sync-free at every batch bucket (graphs.sync_free: a real forward under torch's
   sync-debug mode; the MoE fallback of GPUs without a grouped GEMM kernel syncs);
3. capture succeeds (any exception: graphs off, with the exception as the reason);
4. the self-check: a warm-up batch (blank pages of different sizes, so rows are ragged and one is a padding row)
   decoded ``STEPS`` steps through the graphs gives the eager decode's logits within the dtype's tolerance and its
   greedy tokens (teacher-forced, so every step compares the same inputs; a different token is accepted only
   where the eager logits tie within that tolerance).

``auto``: graphs on when all pass, else off with the first failing check as the logged reason. ``on``: a failed
check is a start-up error that says which. ``off``: today's eager decode, nothing checked. The memory the graphs
pin is measured, counted in the KV budget (admission's ``max_batch_tokens`` shrinks by as many positions) and
logged with the buckets captured. ``decide`` and ``compare`` are pure and tested on CPU, and so is the
self-check itself (eager against the padded forward a graph replays).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch

from predictor.engine.buckets import span_buckets
from predictor.engine.forward import EagerForward, PaddedForward
from predictor.engine.kv import SlotCache
from predictor.errors import LoadError

log = logging.getLogger(__name__)

CHOICES = ("auto", "on", "off")
STEPS = 4  # self-check decode steps
WARMUP_PAGES = ((640, 200), (500, 700), (900, 500))  # blank pages: ragged prompt lengths (v1 counts tiles)
TOLERANCE = {torch.float32: 1e-4}  # of the logits' scale; half types: HALF_TOLERANCE
HALF_TOLERANCE = 2e-2


@dataclass(frozen=True)
class Decision:
    on: bool
    reason: str


def decide(setting: str, failure: str | None, detail: str = "") -> Decision:
    """The outcome for ``setting`` given the first failed check (None: all passed). ``on`` turns a failure into a
    start-up error."""
    if setting not in CHOICES:
        raise ValueError(f"cuda_graphs must be one of {', '.join(CHOICES)}")
    if setting == "off":
        return Decision(False, "off (--cuda_graphs off)")
    if failure is None:
        return Decision(True, f"on ({setting}): {detail}" if detail else f"on ({setting})")
    if setting == "on":
        raise LoadError(f"--cuda_graphs on: decode CUDA graphs cannot be used: {failure}. Start with "
                        "--cuda_graphs auto (eager decode when a check fails) or --cuda_graphs off")
    return Decision(False, f"off (auto): {failure}")


def tolerance(dtype: Any) -> float:
    return TOLERANCE.get(dtype, HALF_TOLERANCE)


def compare(reference: list[torch.Tensor], candidate: list[torch.Tensor], tol: float) -> tuple[str | None, float]:
    """Per step ``[rows, vocab]`` logits of the eager decode and of the candidate (fed the same tokens): the first
    difference that makes the candidate wrong (None: none) and the largest logit error relative to the scale."""
    worst = 0.0
    if len(reference) != len(candidate):
        return f"{len(candidate)} steps against {len(reference)}", worst
    for step, (a, b) in enumerate(zip(reference, candidate, strict=True)):
        a, b = a.float(), b.float()
        if a.shape != b.shape:
            return f"step {step}: logits of shape {tuple(b.shape)} against {tuple(a.shape)}", worst
        if not bool(torch.isfinite(b).all()):
            return f"step {step}: logits not finite", worst
        scale = max(float(a.abs().max()), 1e-6)
        error = float((a - b).abs().max()) / scale
        worst = max(worst, error)
        if error > tol:
            return f"step {step}: logits differ by {error:.3g} of their scale (tolerance {tol:g})", worst
        mine = b.argmax(-1)
        gap = a.max(-1).values - a.gather(-1, mine[:, None]).squeeze(-1)
        wrong = (mine != a.argmax(-1)) & (gap > tol * scale)
        if bool(wrong.any()):
            return f"step {step}: greedy tokens differ in rows {wrong.nonzero().flatten().tolist()}", worst
    return None, worst


# ---- the start-up run -------------------------------------------------------------------------------------------

def eager_forward(model: Any, family: Any, config: Any) -> EagerForward:
    """The forward without graphs: today's, or padded to batch buckets (``EngineConfig.padded_decode``)."""
    return PaddedForward(model, family, config.max_batch_size) if config.padded_decode else EagerForward(model, family)


def choose(worker: Any) -> tuple[EagerForward, Decision]:
    """The decode forward the worker runs, and why; logged. Raises ``LoadError`` for ``on`` when a check fails."""
    eager = eager_forward(worker.model, worker.family, worker.config)
    setting = worker.config.cuda_graphs
    if setting == "off":
        decision = decide(setting, None)
    elif worker.device.type != "cuda":
        decision = decide(setting, f"device is {worker.device.type} (CUDA graphs need a CUDA device)")
    else:
        graphs, failure, detail = _try_graphs(worker)
        try:
            decision = decide(setting, failure, detail)
        finally:
            if failure is not None and graphs is not None:
                graphs.release()
        if decision.on:
            log.info("decode CUDA graphs: %s", decision.reason)
            return graphs, decision
    log.info("decode CUDA graphs: %s; decode forward: %s", decision.reason, eager.describe())
    return eager, decision


def _try_graphs(worker: Any) -> tuple[Any, str | None, str]:
    """Warm up, check, capture and self-check on the worker's device: (graphs, first failure, detail)."""
    from predictor.engine.graphs import GraphForward, sync_free

    graphs = None
    device = worker.device
    try:
        torch.cuda.synchronize(device)  # weights and the experts probe were queued on the default stream
        with torch.cuda.device(device), torch.cuda.stream(torch.cuda.Stream(device=device)), \
                torch.inference_mode():
            outcomes = warm_up(worker)
            batch = worker.batch
            graphs = GraphForward(worker.model, worker.family, worker.config.max_batch_size, batch)
            spans = span_buckets(batch.columns, batch.span_bucket)
            widths = tuple(w for w in graphs.buckets if w <= batch.slot_capacity)
            failure = sync_free(worker.model, worker.family, batch, widths, spans[0])
            if failure is not None:
                return graphs, failure, ""
            graphs.capture(batch, spans)
            failure, worst = self_check(worker, outcomes, EagerForward(worker.model, worker.family), graphs)
            if failure is None and graphs.replays != STEPS:
                failure = f"{graphs.replays} of {STEPS} steps ran from a graph (a shape was not captured)"
            if failure is not None:
                return graphs, f"self-check against eager decode failed: {failure}", ""
            budget = _count_in_budget(worker, graphs.pinned_bytes)
            return graphs, None, (f"{graphs.describe()}; admission KV budget {budget} positions; self-check: "
                                  f"{len(outcomes)} rows x {STEPS} steps, max logit error {worst:.2g} of scale, "
                                  "same greedy tokens")
    except Exception as exc:  # noqa: BLE001 - any failure of this optional path means graphs off, with the reason
        log.warning("CUDA graph set-up failed", exc_info=True)
        return graphs, f"set-up failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}", ""
    finally:
        if worker.batch is not None:
            worker.batch.clear()
        torch.cuda.synchronize(device)


@torch.inference_mode()
def warm_up(worker: Any) -> list[Any]:
    """Prefill blank pages through the worker's own prefiller and allocate its slot cache (at the budget, as the
    first join would); returns the prefilled outcomes, joined into the cache."""
    from PIL import Image

    from predictor.engine.types import GenerationRequest, SamplingParams
    from predictor.families.base import ImageOptions

    pages = WARMUP_PAGES[:max(1, min(len(WARMUP_PAGES), worker.config.max_batch_size))]
    outcomes = []
    for size in pages:
        prepared = worker.family.prepare(Image.new("RGB", size, "white"), "<image>\nFree OCR.", ImageOptions())
        request = GenerationRequest(prepared=prepared, params=SamplingParams(max_new_tokens=STEPS + 1))
        for outcome in worker.prefiller.submit([request]).result():
            if outcome.error is not None:
                raise outcome.error
            outcome.hand_over()
            outcomes.append(outcome)
    columns = max(int(o.mask.shape[1]) for o in outcomes) + STEPS + 1
    worker._reserve(outcomes[0].cache, len(outcomes), columns)
    rejoin(worker.batch, outcomes)
    return outcomes


def rejoin(batch: SlotCache, outcomes: list[Any]) -> None:
    """Reset the cache to the warm-up rows just prefilled (each run of the self-check starts from here)."""
    batch.clear()
    for outcome in outcomes:
        positions = [r.prepared.prompt_tokens for r in outcome.requests]
        batch.join(outcome.cache, outcome.mask, positions, outcome.logits.argmax(-1))


def run_steps(forward: EagerForward, batch: SlotCache, steps: int,
              forced: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """``steps`` decode steps through ``forward``: greedy, or fed ``forced`` tokens; the logits of each step."""
    logits = []
    for step in range(steps):
        out = forward(batch).clone()
        batch.next_ids[:batch.rows].copy_(out.argmax(-1) if forced is None else forced[step])
        batch.end_step()
        logits.append(out)
    return logits


@torch.inference_mode()
def self_check(worker: Any, outcomes: list[Any], reference: EagerForward,
               candidate: EagerForward) -> tuple[str | None, float]:
    """Decode the warm-up rows with ``reference``, then again with ``candidate`` fed the reference's tokens."""
    batch = worker.batch
    rejoin(batch, outcomes)
    expected = run_steps(reference, batch, STEPS)
    rejoin(batch, outcomes)
    got = run_steps(candidate, batch, STEPS, forced=[e.argmax(-1) for e in expected])
    batch.clear()
    return compare(expected, got, tolerance(batch.dtype))


def position_bytes(batch: SlotCache) -> int:
    """Device bytes one KV position (one slot column across every layer) takes."""
    return sum((layer.keys[0, :, 0].numel() + layer.values[0, :, 0].numel()) * layer.keys.element_size()
               for layer in batch.layers)


def _count_in_budget(worker: Any, pinned: int) -> int:
    """Take the graphs' memory out of admission's KV budget; returns the budget left (positions)."""
    positions = -(-pinned // position_bytes(worker.batch))
    budget = worker.config.max_batch_tokens - positions
    if budget < worker.batch.columns:
        raise RuntimeError(f"the graphs pin {pinned / 2**20:.0f} MiB, {positions} KV positions: less than one "
                           f"row of the {worker.config.max_batch_tokens}-position budget would be left")
    worker.config = dataclasses.replace(worker.config, max_batch_tokens=budget)
    worker.scheduler.config = worker.config
    return budget
