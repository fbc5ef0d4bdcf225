"""CUDA graphs for the decode forward: captured at start-up per (batch bucket, span bucket), replayed per step.

On a fast GPU a decode step costs the host's time to queue ~1,000 small kernels (docs/PERFORMANCE.md); a CUDA
graph queues them all in one launch. A graph replays fixed shapes and fixed addresses, so:

- the forward is the padded one (forward.py): ``batch_bucket(n)`` rows at the step's span bucket, one graph per
  pair, all captured before serving (graph_setup.py decides whether they are used at all);
- every input is a view of the slot cache's persistent buffers (``next_ids``, ``position``, ``mask``, and
  ``arange``/``write`` as the write index ``step_index``), so a replay reads the values of the step being run;
  the logits land in one static buffer, copied inside the graph, so no graph keeps its own output alive and the
  graphs share one memory pool (captured largest first, as the pool then only grows once);
- the graphs hold the cache's buffers: when the cache is reallocated (``SlotCache.ensure`` grew it for a request
  longer than its rows) they are dropped and decode goes back to the eager forward, which is logged;
- sampling stays outside the graph (per-row generators, bans and the one device-to-host read).

Capture follows PyTorch's documented recipe: warm-up iterations on a side stream, then ``torch.cuda.graph(g,
pool=...)``. Nothing here runs without CUDA; what decides buckets and padding is device-independent and tested
on CPU (buckets.py, forward.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from predictor.engine.forward import EagerForward, PaddedForward, run_forward
from predictor.engine.kv import SlotCache

log = logging.getLogger(__name__)


class GraphForward(PaddedForward):
    """The padded decode forward, replayed from captured graphs where one was captured for the step's shape."""

    name = "cuda graphs"

    def __init__(self, model: Any, family: Any, max_rows: int, batch: SlotCache):
        super().__init__(model, family, max_rows)
        self.buffers = batch.mask  # the cache buffers the graphs were captured on (replaced when it regrows)
        self.graphs: dict[tuple[int, int], Any] = {}
        self.logits: torch.Tensor | None = None  # [largest bucket, vocab]: every graph's output
        self.pinned_bytes = 0
        self.seconds = 0.0
        self.replays = 0  # steps run from a graph (the self-check makes sure it tested graphs, not the fallback)

    def __call__(self, batch: SlotCache) -> torch.Tensor:
        n = batch.rows
        mask = batch.begin_step(self.width(batch))
        graph = self.graphs.get((batch.width, batch.span)) if batch.mask is self.buffers else None
        if graph is None or self.logits is None:  # a shape not captured: the same forward, eagerly
            return run_forward(self.model, self.family.decode_mask, batch, mask)[:n].float()
        graph.replay()
        self.replays += 1
        return self.logits[:n].float()

    def after_regrow(self, batch: SlotCache) -> EagerForward:
        log.warning("decode CUDA graphs dropped: the KV cache was reallocated (%d slots x %d columns) for a longer "
                    "request, and graphs hold the old buffers; decode runs eagerly from now on. A larger "
                    "--max_batch_tokens (per-row columns >= the longest prompt + max_new_tokens) avoids this",
                    batch.slot_capacity, batch.columns)
        self.release()
        return EagerForward(self.model, self.family)

    def release(self) -> None:
        self.graphs.clear()
        self.logits = None
        torch.cuda.empty_cache()

    def describe(self) -> str:
        widths = sorted({w for w, _ in self.graphs})
        spans = sorted({s for _, s in self.graphs})
        return (f"{len(self.graphs)} graphs: batch buckets {', '.join(map(str, widths))} x {len(spans)} span "
                f"buckets {spans[0] if spans else 0}..{spans[-1] if spans else 0}; "
                f"{self.pinned_bytes / 2**20:.1f} MiB pinned, captured in {self.seconds:.1f} s")

    @torch.inference_mode()
    def capture(self, batch: SlotCache, spans: tuple[int, ...]) -> None:
        """Capture one graph per (bucket, span) on ``batch``'s buffers; measures the device memory they pin."""
        device = batch.device
        keys = [(w, s) for w in reversed(self.buckets) if w <= batch.slot_capacity for s in reversed(spans)]
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        free, reserved = torch.cuda.mem_get_info(device)[0], torch.cuda.memory_reserved(device)
        started = time.perf_counter()
        pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream(device=device)
        for i, (width, span) in enumerate(keys):
            mask = batch.frame(width, span)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):  # warm-up before capture (lazy initialisation must not be captured)
                for _ in range(3 if i == 0 else 1):
                    logits = run_forward(self.model, self.family.decode_mask, batch, mask)
            torch.cuda.current_stream(device).wait_stream(side)
            if self.logits is None:
                self.logits = torch.empty(max(self.buckets), logits.shape[-1], dtype=logits.dtype, device=device)
            del logits
            graph = torch.cuda.CUDAGraph()
            # thread_local: only this thread's unsafe calls break the capture, not another thread's allocation
            with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
                self.logits[:width].copy_(run_forward(self.model, self.family.decode_mask, batch, mask))
            self.graphs[(width, span)] = graph
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()  # the warm-ups' cached blocks are not the graphs' (their pool stays)
        self.seconds = time.perf_counter() - started
        self.pinned_bytes = max(free - torch.cuda.mem_get_info(device)[0],
                                torch.cuda.memory_reserved(device) - reserved, 0)


@torch.inference_mode()
def sync_free(model: Any, family: Any, batch: SlotCache, widths: tuple[int, ...], span: int) -> str | None:
    """None when the decode forward at every batch bucket runs without making the host wait for the device
    (checked for real: ``torch.cuda.set_sync_debug_mode("error")`` raises on a synchronizing call); else what
    synced. A forward that syncs cannot be captured, and on GB10 the MoE fallback does (issue 22)."""
    device = batch.device
    for width in widths:
        mask = batch.frame(width, span)
        run_forward(model, family.decode_mask, batch, mask)  # first call: lazy initialisation may sync, legitimately
        torch.cuda.synchronize(device)
        torch.cuda.set_sync_debug_mode("error")
        try:
            run_forward(model, family.decode_mask, batch, mask)
        except RuntimeError as exc:
            return f"the decode forward at {width} rows is not sync-free ({str(exc).splitlines()[0][:200]})"
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize(device)
    return None
