"""The slot cache grows geometrically: a stream of ever longer joins does not reallocate and copy the running
batch at every join (issue 22: with --max_batch_size 32 and rows longer than the budget's per-row share, every
join used to reallocate to exactly the rows present)."""

from __future__ import annotations

import torch

from predictor.engine.kv import SlotCache
from predictor.engine.prefill import decode_stream
from tests.unit.engine.test_engine_cache import _prefilled


def _joins(cache: SlotCache, lengths: list[int], budget: int) -> int:
    grown = 0
    for i in range(1, len(lengths) + 1):
        grown += cache.ensure(i, max(lengths[:i]), budget)
        cache.join(_prefilled([float(i)], 2), torch.ones(1, 2), [2], torch.tensor([i]))
    return grown


def test_longer_and_longer_rows_reallocate_logarithmically():
    cache = SlotCache(_prefilled([0.0], 2), slots=32, columns=256)
    lengths = [300 + 100 * i for i in range(32)]  # every join longer than any before
    grown = _joins(cache, lengths, budget=10**8)
    assert grown <= 4 and cache.columns >= max(lengths)  # 256 -> 512 -> 1024 -> 2048 -> 4096


def test_rows_past_the_per_row_share_keep_as_many_slots_as_the_budget_holds():
    budget = 131072
    cache = SlotCache(_prefilled([0.0], 2), slots=32, columns=budget // 32)
    grown = _joins(cache, [5096] * 20, budget)  # longer than 4096: the budget holds 25 such rows
    assert grown == 1 and cache.slot_capacity == 25 and cache.positions_held <= budget


def test_the_row_values_survive_growth():
    cache = SlotCache(_prefilled([0.0], 2), slots=2, columns=256)
    _joins(cache, [300, 700, 1500], budget=10**6)
    assert [float(cache.layers[0].keys[i, 0, 0, 0]) for i in range(3)] == [1.0, 2.0, 3.0]


def test_no_decode_stream_on_cpu():
    assert decode_stream("cpu") is None
