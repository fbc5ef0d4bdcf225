"""Timing an experts candidate inside whole decode forwards of the model, as the engine runs them.

A candidate timed alone on one layer, between two synchronizations, hides what it does to the rest of a step: a
host sync (``grouped_mm``'s fallback reads its group offsets on the host, ``eager`` lists the experts hit) looks
cheap alone, but inside a forward it drains the queue the host had built ahead of the device, once per MoE layer.
So for decode-sized calls the probe installs the candidate in every experts layer (``forced``), runs whole decode
forwards on a slot cache like the engine's (``DecodeBatch``), and synchronizes only around the whole set.
Everything is undone afterwards: the experts dispatch is restored and the batch is dropped with its cache.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from predictor.engine.forward import run_forward
from predictor.engine.kv import COLUMN_CHUNK, SlotCache

PROBE_KEY = "ocr_probe"  # registered only while a candidate is forced, then removed
PROMPT = 64  # columns each probe row holds before its decode step: a step early in a page (attention is not timed)


@dataclass
class DecodeBatch:
    """``rows`` rows of ``PROMPT`` random tokens, prefilled once, and one decode step that can be run again and again
    (it writes the same column each time, so every forward has the same shapes)."""

    model: Any
    cache: SlotCache
    mask: torch.Tensor  # the step's additive mask view (``SlotCache.begin_step``)
    decode_mask: Callable[[torch.Tensor], Any]  # the family's, as the engine passes it

    def forward(self) -> None:
        run_forward(self.model, self.decode_mask, self.cache, self.mask)  # the engine's own decode call


def decode_batch(model: Any, rows: int, generator: torch.Generator, prefill_experts: Callable[..., torch.Tensor],
                 decode_mask: Callable[[Any], Any] | None = None) -> DecodeBatch:
    """Prefill ``rows`` text-only prompts (no image: the probe times the text model) and join them to a slot cache.

    The prefill runs ``prefill_experts`` (the probe passes ``eager``): the model's own implementation may be one that
    must not see a prefill's rows (``batched_mm`` gathers weights per token-expert pair)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids = _token_ids(model, (rows, PROMPT + 1), generator).to(device)
    prompt, first = ids[:, :PROMPT], ids[:, PROMPT]  # each row's next token differs: routing spreads as in a batch
    mask = torch.ones(rows, PROMPT, dtype=torch.long, device=device)
    positions = torch.arange(PROMPT, device=device).expand(rows, PROMPT)
    prefill = DynamicCache(config=model.config)
    with forced(model, prefill_experts):
        model(input_ids=prompt, attention_mask=mask, position_ids=positions, cache=prefill, use_cache=True,
              logits_to_keep=1)
    cache = SlotCache(prefill, rows, COLUMN_CHUNK)
    cache.join(prefill, mask, [PROMPT] * rows, first)
    step_mask = cache.begin_step()
    return DecodeBatch(model, cache, step_mask, decode_mask or (lambda mask: mask))


def _token_ids(model: Any, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Random text tokens, never the image placeholder (a placeholder without pixels is an error)."""
    text_config = getattr(model.config, "text_config", model.config)
    vocab = int(text_config.vocab_size)
    ids = torch.randint(0, vocab, shape, generator=generator)
    image = getattr(model.config, "image_token_id", None)
    if image is not None:
        ids[ids == image] = (image + 1) % vocab
    return ids


@contextlib.contextmanager
def forced(model: Any, fn: Callable[..., torch.Tensor]) -> Iterator[None]:
    """Every experts layer of ``model`` runs ``fn`` inside the block; the previous dispatch is restored after."""
    from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

    configs = {id(m.config): m.config for m in model.modules()
               if hasattr(m, "has_gate") and getattr(m, "config", None) is not None}
    before = {key: config._experts_implementation for key, config in configs.items()}
    ALL_EXPERTS_FUNCTIONS[PROBE_KEY] = fn  # the instance's own mapping: deleted below, never global
    try:
        for config in configs.values():
            config._experts_implementation = PROBE_KEY
        yield
    finally:
        for key, config in configs.items():
            config._experts_implementation = before[key]
        del ALL_EXPERTS_FUNCTIONS[PROBE_KEY]


def time_forwards(batch: DecodeBatch, fn: Callable[..., torch.Tensor], repeats: int) -> float:
    """Seconds per decode forward with ``fn`` in every experts layer: one warm-up forward, then ``repeats`` forwards
    with the device synchronized only before and after them. The host queues each forward ahead of the device, as in
    an engine step, so a candidate's own host syncs stall that queue and show in the time."""
    device = batch.cache.device
    with forced(batch.model, fn):
        batch.forward()
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            batch.forward()
        _synchronize(device)
        return (time.perf_counter() - start) / repeats


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
