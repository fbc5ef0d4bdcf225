"""MoE experts per phase: the probe checks each implementation against a per-expert reference before timing it,
and the installed dispatcher picks by the number of token-expert rows (decode batches small, prefills large)."""

from __future__ import annotations

import pytest
import torch

from predictor.engine import experts
from predictor.families.base import ImageOptions, LoadSettings
from predictor.families.v2 import DeepseekOcr2Family
from tests.conftest import page_image


@pytest.fixture()
def family(tiny_v2_dir: str) -> DeepseekOcr2Family:
    fam = DeepseekOcr2Family()  # a fresh model: install() changes its experts dispatch
    fam.load(tiny_v2_dir, LoadSettings("cpu", torch.float32, "sdpa", None))
    return fam


def test_plan_picks_by_rows():
    plan = experts.Plan({6: "batched_mm", 192: "grouped_mm", 6000: "eager"})
    assert [plan.pick(n) for n in (1, 6, 7, 192, 193, 10**6)] == ["batched_mm", "batched_mm", "grouped_mm",
                                                                  "grouped_mm", "eager", "eager"]


def test_probe_rejects_a_wrong_implementation(family, monkeypatch):
    real = experts._candidates

    def with_a_broken_one():
        found = real()
        right = found["batched_mm"]
        found["batched_mm"] = lambda *args: right(*args) * 1.5  # fast and wrong
        return found

    monkeypatch.setattr(experts, "_candidates", with_a_broken_one)
    plan = experts.probe(family.model, sizes=(6, 48))
    assert plan is not None
    for rows in (6, 48):
        assert plan.results[rows]["batched_mm"]["ok"] is False
        assert plan.results[rows]["grouped_mm"]["ok"] and plan.results[rows]["eager"]["ok"]
        assert plan.choice[rows] != "batched_mm"


def test_installed_dispatcher_keeps_the_model_output(family):
    prepared = family.prepare(page_image((640, 200), "experts"), "<image>\nFree OCR.", ImageOptions())
    with torch.inference_mode():
        before = family.model(**prepared.inputs).logits[:, -1]
        plan = experts.probe(family.model, sizes=(6, 48))
        experts.install(family.model, experts.Plan({6: "batched_mm", 48: "eager", 6000: "grouped_mm"}))
        module = experts.find_experts(family.model)
        assert module.config._experts_implementation == experts.NAME
        after = family.model(**prepared.inputs).logits[:, -1]
    assert plan is not None and set(plan.choice) == {6, 48}
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
