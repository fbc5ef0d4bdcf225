"""The dense all-experts path (engine/experts_dense.py): the probe's reference agrees, no host sync, same tokens."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from predictor.engine import experts, experts_dense
from predictor.families.base import ImageOptions, LoadSettings
from predictor.families.v1.family import DeepseekOcrV1Family
from predictor.families.v2.family import DeepseekOcr2Family
from tests.conftest import page_image

SYNCING = {"_local_scalar_dense", "nonzero", "item", "unique", "_unique2", "where"}


class Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def _family(cls, path):
    family = cls()
    family.load(path, LoadSettings("cpu", torch.float32, "sdpa", None))
    return family


@pytest.mark.parametrize("cls", [DeepseekOcrV1Family, DeepseekOcr2Family])
def test_dense_matches_the_reference_without_syncing(cls, tiny_v1_dir, tiny_v2_dir):
    family = _family(cls, tiny_v1_dir if cls is DeepseekOcrV1Family else tiny_v2_dir)
    module = experts.find_experts(family.model)
    generator = torch.Generator().manual_seed(1)
    for rows in (6, 48, 192):
        hidden, index, weights = experts._inputs(module, rows, 2, generator)
        with torch.inference_mode(), Ops() as seen:
            got = experts_dense.dense_experts_forward(module, hidden, index, weights)
        assert not SYNCING & set(seen.ops), seen.ops
        torch.testing.assert_close(got, experts.reference(module, hidden, index, weights), rtol=1e-4, atol=1e-5)
    plan = experts.probe(family.model, sizes=(6,))
    assert plan.results[6]["dense"]["ok"] is True


def test_dense_plan_gives_the_same_greedy_tokens(tiny_v2_dir):
    family = _family(DeepseekOcr2Family, tiny_v2_dir)
    prompt = family.prepare(page_image((640, 200), "dense"), "<image>\nFree OCR.", ImageOptions())

    def tokens():
        with torch.no_grad():
            ids = family.model.generate(**prompt.inputs, max_new_tokens=12, min_new_tokens=12, do_sample=False)
        return ids[0, prompt.prompt_tokens:].tolist()

    experts.install(family.model, experts.Plan({10**9: "eager"}))
    before = tokens()
    experts.install(family.model, experts.Plan({48: "dense", 10**9: "eager"}))  # decode dense, prefill eager
    assert tokens() == before
