"""Fused decode forwards (families/fused.py): fewer dispatched operations per decode step, same tokens.

Counted with a TorchDispatchMode around the engine's real decode step (model forward, sampler, read-back) on the
tiny v1, one greedy row: 221 operations with transformers' forwards when this was written, 162 fused; 164 once the
sampler also computed the chosen token's log-probability (issue 21: a logsumexp and a subtraction, no sync).
"""

from __future__ import annotations

import asyncio
import collections
import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from predictor.engine.config import EngineConfig
from predictor.engine.engine import Engine
from predictor.engine.types import SamplingParams
from predictor.families.base import ImageOptions, LoadSettings
from predictor.families.v1.family import DeepseekOcrV1Family
from predictor.families.v2.family import DeepseekOcr2Family
from tests.conftest import page_image

FUSED_OPS_PER_STEP = 164


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _load(family_class, path: str, fused: bool):
    family = family_class()
    family.load(path, LoadSettings("cpu", torch.float32, "sdpa", None, fused=fused))
    return family


def _ops_per_step(family, prompt) -> list[int]:
    config = EngineConfig(max_batch_size=2, max_batch_tokens=100_000, max_queue=2, request_timeout=60)
    engine = Engine(family, "cpu", config=config)
    worker, step, counts = engine.worker, engine.worker._step, []

    def counted() -> None:
        with OpCounter() as counter:
            step()
        counts.append(sum(counter.ops.values()))

    worker._step = counted
    engine.start()

    async def run():
        async with engine.slot():
            params = SamplingParams(max_new_tokens=5, min_new_tokens=5, ngram_size=0)
            return await engine.generate(copy.copy(prompt), params)

    try:
        asyncio.run(run())
    finally:
        engine.stop()
    return counts


def test_decode_step_dispatches_a_quarter_fewer_ops(tiny_v1_dir):
    prompts = {}
    counts = {}
    for fused in (False, True):
        family = _load(DeepseekOcrV1Family, tiny_v1_dir, fused)
        prompts[fused] = family.prepare(page_image((640, 200), "ops"), "<image>\nFree OCR.", ImageOptions("tiny"))
        counts[fused] = _ops_per_step(family, prompts[fused])
    assert len(set(counts[True])) == 1 and len(set(counts[False])) == 1  # every steady step dispatches the same
    before, after = counts[False][0], counts[True][0]
    assert after <= FUSED_OPS_PER_STEP
    assert after <= 0.75 * before, (before, after)


@pytest.mark.parametrize("family_class", [DeepseekOcrV1Family, DeepseekOcr2Family])
def test_fused_forwards_give_the_same_greedy_tokens(family_class, tiny_v1_dir, tiny_v2_dir):
    path = tiny_v1_dir if family_class is DeepseekOcrV1Family else tiny_v2_dir
    tokens = {}
    for fused in (False, True):
        family = _load(family_class, path, fused)
        swapped = [m for m in family.model.modules() if "forward" in vars(m)]
        assert bool(swapped) == fused
        out = []
        for size in ((640, 200), (500, 700)):
            prompt = family.prepare(page_image(size, f"fused {size}"), "<image>\nFree OCR.", ImageOptions())
            with torch.no_grad():
                ids = family.model.generate(**prompt.inputs, max_new_tokens=16, min_new_tokens=16, do_sample=False)
            out.append(ids[0, prompt.prompt_tokens:].tolist())
        tokens[fused] = out
    assert tokens[True] == tokens[False]


def test_fused_rms_norm_matches_transformers_in_bfloat16(tiny_v2_dir):
    family = _load(DeepseekOcr2Family, tiny_v2_dir, True)
    norm = next(m for m in family.model.modules() if type(m).__name__ == "DeepseekOcr2TextRMSNorm")
    norm = norm.to(torch.bfloat16)
    x = torch.randn(3, 1, norm.weight.shape[0], dtype=torch.bfloat16)
    reference = type(norm).forward(norm, x)  # the class's (transformers') forward
    assert torch.equal(norm(x), reference)
