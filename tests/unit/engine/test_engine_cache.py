"""The slot KV cache: rows join and leave by slot, decode steps write in place, admission budgets the padded cache."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace

import pytest
import torch

from predictor.engine.engine import Engine
from predictor.engine.kv import SlotCache
from predictor.engine.types import SamplingParams
from predictor.families.base import ImageOptions
from tests.conftest import page_image
from tests.engine_rows import running_engine

HEADS, DIM = 2, 4


def _prefilled(values: list[float], length: int) -> SimpleNamespace:
    """A stand-in for a prefill cache: one layer, each row filled with its own value."""
    keys = torch.stack([torch.full((HEADS, length, DIM), v) for v in values])
    return SimpleNamespace(layers=[SimpleNamespace(keys=keys, values=keys + 0.5)])


def _step(cache: SlotCache, fill: float) -> None:
    """What a decode step does to the cache: mark, write one column per row through the layer, advance."""
    cache.begin_step()
    new = torch.full((cache.rows, HEADS, 1, DIM), fill)
    keys, _ = cache.layers[0].update(new, new)
    assert keys.shape == (cache.rows, HEADS, cache.span, DIM)
    cache.end_step()


def test_slots_keep_their_storage_and_rows_move_not_the_batch():
    cache = SlotCache(_prefilled([0.0], 3), slots=4, columns=16)
    storage = cache.storage()
    cache.join(_prefilled([1.0, 2.0], 3), torch.tensor([[0, 1, 1], [1, 1, 1]]), [2, 3], torch.tensor([7, 8]))
    _step(cache, 9.0)
    cache.join(_prefilled([3.0], 5), torch.ones(1, 5, dtype=torch.long), [5], torch.tensor([6]))
    _step(cache, 10.0)
    assert cache.lengths == [5, 5, 6] and cache.span == 6  # the longest row + 1: on CPU spans are not bucketed
    assert cache.position[:3].tolist() == [4, 5, 6]  # position ids count real tokens only
    order = cache.remove([0])  # the last row moves into the freed slot
    assert order == [2, 1] and cache.rows == 2 and cache.lengths == [6, 5]
    keys = cache.layers[0].keys
    assert torch.all(keys[0, :, :5] == 3.0) and torch.all(keys[0, :, 5] == 10.0)
    assert torch.all(keys[1, :, :3] == 2.0) and torch.all(keys[1, :, 3] == 9.0) and torch.all(keys[1, :, 4] == 10.0)
    assert cache.mask[0, :6].tolist() == [0.0] * 6 and cache.mask[0, 6] < -1e30  # additive: 0 = attend
    assert cache.next_ids[:2].tolist() == [6, 8]
    _step(cache, 11.0)
    assert cache.storage() == storage  # no step, join or leave reallocated anything


def test_growth_builds_new_buffers_before_swapping():
    cache = SlotCache(_prefilled([0.0], 2), slots=2, columns=8)
    cache.join(_prefilled([1.0], 2), torch.ones(1, 2, dtype=torch.long), [2], torch.tensor([5]))
    before = cache.storage()
    assert cache.ensure(3, 300, budget=10_000)
    assert cache.slot_capacity == 3 and cache.columns == 512 and cache.storage() != before
    assert torch.all(cache.layers[0].keys[0, :, :2] == 1.0) and cache.next_ids[0].item() == 5
    assert not cache.ensure(2, 100, budget=10_000)  # fits: nothing happens
    assert cache.ensure(4, 512, budget=1_000)  # over budget: exactly what was asked for
    assert (cache.slot_capacity, cache.columns) == (4, 256 * 2)


def _run(engine: Engine, items, delays=None):
    async def one(prepared, params, delay):
        await asyncio.sleep(delay)
        engine.reserve()
        try:
            return await engine.generate(copy.copy(prepared), params)  # the engine consumes it
        finally:
            engine.release()

    async def main():
        return await asyncio.gather(*(one(p, s, d) for (p, s), d in zip(items, delays or [0] * len(items),
                                                                          strict=True)))
    return asyncio.run(main())


def _params(n: int) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, min_new_tokens=n, ngram_size=0)


def test_decode_steps_joins_and_leaves_keep_the_cache_storage(family):
    engine = running_engine(family, max_batch_size=4)
    prepared = family.prepare(page_image((640, 200), "slots"), "<image>\nFree OCR.", ImageOptions())
    try:
        _run(engine, [(prepared, _params(3))])  # the first join allocates the slots
        storage = engine.worker.batch.storage()
        steps = engine.stats.steps
        # rows of different lengths arriving at different times: joins and leaves in the middle of decoding
        lengths = [400, 30, 300, 20, 350]
        results = _run(engine, [(prepared, _params(n)) for n in lengths], delays=[0, 0, 0.05, 0.1, 0.2])
        assert [len(r.token_ids) for r in results] == lengths
        assert engine.stats.steps - steps >= 399
        assert engine.stats.peak_rows > 1
        assert engine.worker.batch.storage() == storage
    finally:
        engine.stop()


def test_admission_budgets_rows_times_the_longest_row(family):
    """One long row among short ones: the padded cache (rows x longest) is what must fit, not the sum."""
    prepared = family.prepare(page_image((640, 200), "admission"), "<image>\nFree OCR.", ImageOptions())
    long_need, short_need = prepared.prompt_tokens + 600, prepared.prompt_tokens + 5
    budget = 2 * long_need
    assert long_need + 3 * short_need <= budget  # the old rule (sum of rows) would run all four together
    engine = running_engine(family, max_batch_size=4, max_batch_tokens=budget)
    try:
        items = [(prepared, _params(600))] + [(prepared, _params(5))] * 3
        results = _run(engine, items, delays=[0, 0.3, 0.3, 0.3])
        assert [len(r.token_ids) for r in results] == [600, 5, 5, 5]
        assert engine.stats.peak_rows == 2  # the long row plus one short row at a time
        assert engine.worker.batch.positions_held <= budget
    finally:
        engine.stop()


def test_a_decoding_row_holds_no_pixels(family):
    """Once prefilled, a page's pixel tensors (~55 MB for a letter page in v2) are freed while its row decodes."""
    import gc
    import weakref

    engine = running_engine(family, max_batch_size=2, max_queue=2)
    prepared = family.prepare(page_image((640, 200), "pixels"), "<image>\nFree OCR.", ImageOptions())
    pixels = weakref.ref(prepared.inputs["pixel_values"])

    async def main():
        task = asyncio.create_task(engine.generate(prepared, _params(400)))
        for _ in range(3000):
            if engine.worker.rows and engine.worker.rows[0].generated:
                break
            await asyncio.sleep(0.01)
        gc.collect()
        freed_while_decoding = pixels() is None and not task.done()
        return freed_while_decoding, await task

    try:
        freed, result = asyncio.run(main())
    finally:
        engine.stop()
    assert freed and len(result.token_ids) == 400
    with pytest.raises(ValueError, match="prepare again"):
        asyncio.run(engine.generate(prepared, _params(4)))
