"""Batch and span buckets (engine/buckets.py) and what a padded step does to free slots (engine/kv.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from predictor.engine.buckets import batch_bucket, batch_buckets, span_buckets
from predictor.engine.kv import SlotCache, bucketed_span


def test_batch_buckets_are_powers_of_two_then_multiples_of_eight_up_to_the_largest_batch():
    assert batch_buckets(1) == (1,)
    assert batch_buckets(3) == (1, 2, 3)
    assert batch_buckets(8) == (1, 2, 4, 8)
    assert batch_buckets(12) == (1, 2, 4, 8, 12)
    assert batch_buckets(32) == (1, 2, 4, 8, 16, 24, 32)
    assert batch_buckets(36) == (1, 2, 4, 8, 16, 24, 32, 36)
    with pytest.raises(ValueError):
        batch_buckets(0)


def test_batch_bucket_is_the_smallest_that_holds_the_rows_within_the_slots():
    buckets = batch_buckets(32)
    assert [batch_bucket(n, buckets, 32) for n in (1, 2, 3, 5, 8, 9, 17, 25, 32)] == [1, 2, 4, 8, 8, 16, 24, 32, 32]
    assert batch_bucket(13, buckets, 14) == 14  # a cache with fewer slots than the bucket (regrown): all of them
    for bad in (0, 33):
        with pytest.raises(ValueError):
            batch_bucket(bad, buckets, 32)


def test_span_buckets_are_every_span_a_step_can_attend():
    assert span_buckets(1024, 256) == (256, 512, 768, 1024)
    assert span_buckets(600, 256) == (256, 512, 600)  # a budget-cut buffer ends at its own width
    spans = span_buckets(4096, 256)
    assert {bucketed_span(n, 256, 4096) for n in range(1, 4097)} == set(spans)


def _cache(slots: int, columns: int) -> SlotCache:
    keys = torch.zeros(1, 2, 3, 4)
    return SlotCache(SimpleNamespace(layers=[SimpleNamespace(keys=keys, values=keys)]), slots, columns)


def _join(cache: SlotCache, length: int, token: int) -> None:
    keys = torch.ones(1, 2, length, 4)
    cache.join(SimpleNamespace(layers=[SimpleNamespace(keys=keys, values=keys)]),
               torch.ones(1, length, dtype=torch.long), [length], torch.tensor([token]))


def test_a_slot_a_row_left_is_reset_before_it_pads_and_a_joining_row_finds_it_clean():
    cache = _cache(4, 64)
    for length, token in ((5, 11), (9, 12), (3, 13)):
        _join(cache, length, token)
    cache.begin_step(4)
    cache.end_step()
    cache.remove([1])  # the last row moves into slot 1; slot 2 keeps the departed state until it pads
    assert cache.rows == 2 and cache.stale == {2}
    assert cache.write[2] == 4 and cache.next_ids[2] == 13
    free_masks = cache.mask[2:].clone()
    cache.begin_step(4)  # a padded step over slots 2 and 3
    assert cache.write[2:].tolist() == [0, 0] and cache.position[2:].tolist() == [0, 0]
    assert cache.next_ids[2:].tolist() == [0, 0] and not cache.stale
    assert cache.step_index[0].tolist() == [0, 1, 2, 3] and cache.step_index[1].tolist() == [6, 4, 0, 0]
    assert torch.equal(cache.mask[2:], free_masks)  # padding rows' masks are left alone: only live rows' open
    cache.end_step()
    assert cache.write[:4].tolist() == [7, 5, 0, 0]  # only live rows advance
    _join(cache, 7, 14)  # into slot 2, after it served as padding
    assert cache.write[2] == 7 and cache.position[2] == 7 and cache.next_ids[2] == 14
    assert cache.mask[2, :7].tolist() == [0.0] * 7 and bool((cache.mask[2, 7:] < -1e30).all())


def test_an_unpadded_step_touches_no_free_slot():
    cache = _cache(4, 64)
    _join(cache, 5, 11)
    _join(cache, 6, 12)
    cache.remove([1])
    cache.begin_step()
    assert cache.stale == {1} and cache.width == 1 and cache.write[1] == 6
