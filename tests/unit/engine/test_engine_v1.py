"""The engine on DeepSeek-OCR v1 (UnlimitedOcr classes): same greedy tokens as transformers' generate, alone or
batched across modes, with the precomputed decode mask under both attention implementations."""

from __future__ import annotations

import asyncio
import copy

import pytest
import torch

from predictor.engine.engine import Engine
from predictor.engine.types import SamplingParams
from predictor.families.base import ImageOptions, LoadSettings
from predictor.families.v1.family import DeepseekOcrV1Family
from tests.conftest import page_image

CASES = [((640, 200), "tiny", 14), ((900, 500), "gundam", 9), ((500, 700), "base", 11)]


@pytest.mark.slow
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_v1_tokens_match_generate_alone_and_batched(tiny_v1_dir, attn):
    family = DeepseekOcrV1Family()
    family.load(tiny_v1_dir, LoadSettings("cpu", torch.float32, attn, None))
    prepared = [family.prepare(page_image(size, f"v1 {size}"), "<image>\nFree OCR.", ImageOptions(mode=mode))
                for size, mode, _ in CASES]
    expected = []
    for p, (_, _, n) in zip(prepared, CASES, strict=True):
        with torch.no_grad():
            out = family.model.generate(**p.inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        expected.append(out[0, p.prompt_tokens:].tolist())

    engine = Engine(family, "cpu", max_batch_size=8, max_batch_tokens=100_000, max_queue=8, request_timeout=120,
                    max_prefill_batch=4)
    engine.start()

    async def run(items):
        async def one(p, n):
            async with engine.slot():
                params = SamplingParams(max_new_tokens=n, min_new_tokens=n, ngram_size=0)
                return await engine.generate(copy.copy(p), params)  # the engine consumes it
        return await asyncio.gather(*(one(p, n) for p, n in items))

    try:
        items = [(p, n) for p, (_, _, n) in zip(prepared, CASES, strict=True)]
        alone = [asyncio.run(run([item]))[0].token_ids for item in items]
        batched = [r.token_ids for r in asyncio.run(run(items))]
    finally:
        engine.stop()
    assert alone == expected
    assert batched == expected
