"""The decode forward of one step: the live rows only (today's path), or padded to a batch bucket.

``EagerForward`` runs the model over the ``n`` live rows. ``PaddedForward`` runs it over ``batch_bucket(n)``
rows (buckets.py): slots ``n..B-1`` are free slots run as hidden padding rows and their outputs are discarded.
That is the shape a captured CUDA graph replays (graphs.py); on CPU it is an engine option
(``EngineConfig.padded_decode``) so that tests prove it gives today's tokens.

Why a padding row is harmless: each row's forward reads only its own slot (attention is per row, MoE routing per
token); a free slot that a departed row left is reset to write column 0, position 0, token 0 before it pads
(``SlotCache._reset_stale``), so a padding row writes column 0 of its own free slot, which a joining row
overwrites, and never indexes past the cache or the model's position tables; its mask row is whatever the slot
held (finite: the mask uses the dtype's minimum, not -inf); only live rows' mask columns open and write columns
advance (``SlotCache.begin_step``/``end_step``). Sampling stays outside: only the first ``n`` rows' logits are returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from predictor.engine.buckets import batch_bucket, batch_buckets
from predictor.engine.kv import SlotCache


def run_forward(model: Any, decode_mask: Callable[[torch.Tensor], Any], batch: SlotCache,
                mask: torch.Tensor) -> torch.Tensor:
    """The model over ``batch.width`` slots (shape set by ``begin_step``/``frame``): ``[width, vocab]`` logits of
    the one new position, in the model's dtype. ``decode_mask``: the family's (``ModelFamily.decode_mask``). The
    engine's steps, the graphs and the experts probe (experts_forward.py) all run this one call."""
    width = batch.width
    out = model(input_ids=batch.next_ids[:width, None], position_ids=batch.position[:width, None],
                attention_mask=decode_mask(mask), cache=batch, use_cache=True)
    return out.logits[:, -1]


class EagerForward:
    """Today's decode forward: the live rows, eagerly."""

    name = "eager"

    def __init__(self, model: Any, family: Any):
        self.model, self.family = model, family

    def width(self, batch: SlotCache) -> int:
        return batch.rows

    def __call__(self, batch: SlotCache) -> torch.Tensor:
        """Begin the step and run it: float32 ``[rows, vocab]`` logits for the sampler (``end_step`` is the caller's,
        once the step fully succeeded)."""
        mask = batch.begin_step(self.width(batch))
        logits = run_forward(self.model, self.family.decode_mask, batch, mask)
        return (logits if batch.width == batch.rows else logits[:batch.rows]).float()

    def after_regrow(self, batch: SlotCache) -> EagerForward:
        """The forward to use once the cache's buffers were reallocated (graphs hold the old ones)."""
        return self

    def describe(self) -> str:
        return self.name


class PaddedForward(EagerForward):
    """The forward over the live rows' batch bucket, eagerly (what a graph replays)."""

    name = "padded"

    def __init__(self, model: Any, family: Any, max_rows: int):
        super().__init__(model, family)
        self.buckets = batch_buckets(max_rows)

    def width(self, batch: SlotCache) -> int:
        return batch_bucket(batch.rows, self.buckets, batch.slot_capacity)

    def describe(self) -> str:
        return f"{self.name} (batch buckets {', '.join(map(str, self.buckets))})"
