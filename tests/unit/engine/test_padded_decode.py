"""Padded-bucketed decode (engine/forward.py): what a CUDA graph replays gives today's tokens, on CPU.

Both tiny families; five rows of different prompt lengths and caps (so they join and leave at different steps and
the batch crosses bucket boundaries 1, 2, 4, 8), greedy, seeded sampling and seeded top-p mixed in one batch:
decoded with the forward padded to batch buckets (hidden padding rows in free slots, some left by rows that
finished) and with today's forward over the live rows only. The tokens must be identical.
"""

from __future__ import annotations

from concurrent import futures

import pytest
import torch

from predictor.engine.types import SamplingParams
from predictor.families.base import ImageOptions, LoadSettings
from predictor.families.v1.family import DeepseekOcrV1Family
from predictor.families.v2.family import DeepseekOcr2Family
from tests.conftest import page_image
from tests.engine_rows import run_rows, running_engine

ROWS = [((640, 200), dict(), 30), ((500, 700), dict(temperature=0.8, seed=7), 8),
        ((900, 500), dict(temperature=1.1, top_p=0.9, seed=3), 24), ((300, 300), dict(), 4),
        ((700, 400), dict(temperature=0.9, seed=11), 16)]


def _decode(family, prompts, padded: bool) -> tuple[list[list[int]], list[tuple[int, int]]]:
    engine = running_engine(family, max_batch_size=8, padded_decode=padded)
    shapes: list[tuple[int, int]] = []  # (live rows, forward width) of each step
    forward = engine.worker.forward

    def recorded(batch):
        # a tiny CPU step outruns a prefill: until every row joined, each step waits for the prefill in flight,
        # so rows join one per step and overlap (their tokens do not depend on when they join)
        if engine.stats.joined < len(ROWS):
            futures.wait([f for f, _ in engine.worker.pending], timeout=10)
        logits = forward(batch)
        shapes.append((batch.rows, batch.width))
        return logits

    engine.worker.forward = recorded
    items = [(p, SamplingParams(max_new_tokens=cap, min_new_tokens=cap, ngram_size=0, **kw))
             for p, (_, kw, cap) in zip(prompts, ROWS, strict=True)]
    try:
        outcomes = run_rows(engine, items)
    finally:
        engine.stop()
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert [len(o.token_ids) for o in outcomes] == [cap for _, _, cap in ROWS]
    return [o.token_ids for o in outcomes], shapes


@pytest.mark.parametrize("family_class", [DeepseekOcrV1Family, DeepseekOcr2Family])
def test_padded_bucketed_decode_gives_todays_tokens(family_class, tiny_v1_dir, tiny_v2_dir):
    family = family_class()
    family.load(tiny_v1_dir if family_class is DeepseekOcrV1Family else tiny_v2_dir,
                LoadSettings("cpu", torch.float32, "sdpa", None))
    prompts = [family.prepare(page_image(size, f"pad {size}"), "<image>\nFree OCR.", ImageOptions())
               for size, _, _ in ROWS]
    padded, shapes = _decode(family, prompts, padded=True)
    assert any(width > rows for rows, width in shapes)  # padding rows really ran
    assert all(width in (1, 2, 4, 8) and width >= rows for rows, width in shapes)
    assert len({width for _, width in shapes}) >= 2  # the batch crossed a bucket boundary
    eager, eager_shapes = _decode(family, prompts, padded=False)
    assert all(width == rows for rows, width in eager_shapes)  # today's forward: live rows only
    assert padded == eager
