"""The attended span rounded up to buckets (engine/kv.py): decode shapes repeat, tokens stay exactly today's.

Both tiny families, a batch of three rows of different prompt lengths (greedy, seeded sampling, seeded top-p),
decoded with buckets of 256 (CUDA's, forced here on CPU) and with the span growing by one per step (bucket 1, the
CPU default). The bucket comes from the cache's device: 256 on CUDA, 1 elsewhere.
"""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace

import pytest
import torch

from predictor.engine.kv import SPAN_BUCKET, SlotCache, bucketed_span, span_bucket_for
from predictor.engine.types import SamplingParams
from predictor.families.base import ImageOptions, LoadSettings
from predictor.families.v1.family import DeepseekOcrV1Family
from predictor.families.v2.family import DeepseekOcr2Family
from tests.conftest import page_image
from tests.engine_rows import running_engine

PARAMS = [dict(), dict(temperature=0.8, seed=7), dict(temperature=1.1, top_p=0.9, seed=3)]


def test_bucketed_span_rounds_up_within_the_buffers():
    assert [bucketed_span(n, 256, 1024) for n in (1, 255, 256, 257, 1000)] == [256, 256, 256, 512, 1024]
    assert bucketed_span(300, 256, 400) == 400  # a budget-cut buffer: never past its columns
    assert bucketed_span(2049, 1, 4096) == 2049


def test_the_bucket_is_the_devices():
    assert span_bucket_for("cpu") == span_bucket_for(torch.device("cpu")) == 1
    assert span_bucket_for("cuda") == span_bucket_for("cuda:1") == span_bucket_for(torch.device("cuda", 0)) == 256


def _layers(rows: int, length: int) -> SimpleNamespace:
    return SimpleNamespace(layers=[SimpleNamespace(keys=torch.zeros(rows, 2, length, 4),
                                                   values=torch.zeros(rows, 2, length, 4))])


def test_on_cpu_the_span_is_the_longest_row_plus_one():
    cache = SlotCache(_layers(1, 1), slots=4, columns=1024)
    assert cache.span_bucket == 1
    for rows, length in ((1, 300), (2, 41)):
        ids = torch.zeros(rows, dtype=torch.long)
        cache.join(_layers(rows, length), torch.ones(rows, length), [length] * rows, ids)
    spans = []
    for _ in range(3):
        mask = cache.begin_step()
        spans.append(cache.span)
        assert mask.shape == (3, 1, 1, cache.span)
        cache.end_step()
    assert spans == [301, 302, 303]


def _tokens(family, prompts) -> list[list[int]]:
    engine = running_engine(family, max_batch_size=4, max_batch_tokens=100_000, max_queue=4, request_timeout=120)
    spans: list[int] = []
    step = engine.worker._step

    def recorded() -> None:
        step()
        if engine.worker.batch is not None:
            spans.append(engine.worker.batch.span)

    engine.worker._step = recorded

    async def run():
        async def one(prompt, kw):
            async with engine.slot():
                params = SamplingParams(max_new_tokens=12, min_new_tokens=12, ngram_size=0, **kw)
                return (await engine.generate(copy.copy(prompt), params)).token_ids
        return await asyncio.gather(*(one(p, kw) for p, kw in zip(prompts, PARAMS, strict=True)))

    try:
        tokens = asyncio.run(run())
    finally:
        engine.stop()
    assert spans
    return tokens, spans


@pytest.mark.parametrize("family_class", [DeepseekOcrV1Family, DeepseekOcr2Family])
def test_bucketed_decode_gives_todays_tokens(family_class, tiny_v1_dir, tiny_v2_dir, monkeypatch):
    family = family_class()
    family.load(tiny_v1_dir if family_class is DeepseekOcrV1Family else tiny_v2_dir,
                LoadSettings("cpu", torch.float32, "sdpa", None))
    prompts = [family.prepare(page_image(size, f"bucket {size}"), "<image>\nFree OCR.", ImageOptions())
               for size in ((640, 200), (500, 700), (900, 500))]
    monkeypatch.setattr(SlotCache, "span_bucket", SPAN_BUCKET)  # CUDA's bucket, on CPU
    bucketed, spans = _tokens(family, prompts)
    assert all(span % SPAN_BUCKET == 0 for span in spans) and len(set(spans)) < len(spans)
    monkeypatch.setattr(SlotCache, "span_bucket", 1)
    exact, exact_spans = _tokens(family, prompts)
    assert len(set(exact_spans)) > len(set(spans))  # the unbucketed span really grew step by step
    assert bucketed == exact
