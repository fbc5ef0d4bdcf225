"""The experts probe times decode sizes inside whole decode forwards of the model (engine/experts_forward.py), never
chooses a wrong candidate, and leaves the model as it found it; the plan installs on both tiny families."""

from __future__ import annotations

import pytest
import torch
from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS

from predictor.engine import experts, experts_forward
from predictor.families.base import ImageOptions, LoadSettings
from predictor.families.v1.family import DeepseekOcrV1Family
from predictor.families.v2.family import DeepseekOcr2Family
from tests.conftest import page_image

TOP_K = 2  # the tiny checkpoints' num_experts_per_tok
PREFILL_ROWS = 2 * TOP_K * (experts.FORWARD_TOKENS + 1)  # a call past FORWARD_TOKENS tokens: timed alone


def _family(cls, tiny_v1_dir: str, tiny_v2_dir: str):
    family = cls()  # a fresh model: the probe and install() touch its experts dispatch
    family.load(tiny_v1_dir if cls is DeepseekOcrV1Family else tiny_v2_dir,
                LoadSettings("cpu", torch.float32, "sdpa", None))
    return family


def _spied(monkeypatch, model, wrong: str | None = None) -> list[tuple[str, int, tuple[int, ...] | None]]:
    """Record (candidate, hidden rows, input_ids shape of the enclosing model forward or None) per candidate call;
    ``wrong``: that candidate returns a result 1.5x too large."""
    calls: list[tuple[str, int, tuple[int, ...] | None]] = []
    inside: list[tuple[int, ...]] = []
    forward = model.forward

    def spy_forward(*args, **kwargs):
        inside.append(tuple(kwargs["input_ids"].shape))
        try:
            return forward(*args, **kwargs)
        finally:
            inside.pop()

    def recorded(name, fn):
        def run(module, hidden, *args):
            calls.append((name, hidden.shape[0], inside[-1] if inside else None))
            out = fn(module, hidden, *args)
            return out * 1.5 if name == wrong else out
        return run

    real = experts._candidates
    monkeypatch.setattr(experts, "_candidates", lambda: {n: recorded(n, f) for n, f in real().items()})
    monkeypatch.setattr(model, "forward", spy_forward)
    return calls


def _state(model) -> tuple:
    impls = tuple(m.config._experts_implementation for m in model.modules() if hasattr(m, "has_gate"))
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return impls, hooks, experts_forward.PROBE_KEY in ALL_EXPERTS_FUNCTIONS


def test_decode_sizes_are_timed_inside_whole_forwards(tiny_v2_dir, tiny_v1_dir, monkeypatch):
    family = _family(DeepseekOcr2Family, tiny_v1_dir, tiny_v2_dir)
    before = _state(family.model)
    calls = _spied(monkeypatch, family.model)
    plan = experts.probe(family.model, sizes=(6, 48, PREFILL_ROWS), decode_mask=family.decode_mask)
    assert plan is not None
    for rows in (6, 48):
        tokens = rows // TOP_K
        for name, result in plan.results[rows].items():
            assert result["ok"] and result["timed"] == "forward" and result["ms"] > 0, (rows, name, result)
            in_decode = [c for c in calls if c[:2] == (name, tokens) and c[2] == (tokens, 1)]
            # warm-up plus the timed forwards, each through every experts layer
            assert len(in_decode) >= 1 + experts.FORWARD_REPEATS, (rows, name)
    prefill = plan.results[PREFILL_ROWS]
    assert {r.get("timed") for r in prefill.values() if r.get("ok")} == {"alone"}
    assert not [c for c in calls if c[1] == PREFILL_ROWS // TOP_K and c[2] is not None]
    assert _state(family.model) == before  # no forced dispatch, registry entry or hook left behind


def test_a_wrong_candidate_is_never_timed_or_chosen(tiny_v2_dir, tiny_v1_dir, monkeypatch):
    family = _family(DeepseekOcr2Family, tiny_v1_dir, tiny_v2_dir)
    calls = _spied(monkeypatch, family.model, wrong="dense")
    plan = experts.probe(family.model, sizes=(6, 48), decode_mask=family.decode_mask)
    assert plan is not None
    for rows in (6, 48):
        assert plan.results[rows]["dense"]["ok"] is False and "ms" not in plan.results[rows]["dense"]
        assert plan.choice[rows] != "dense"
        assert plan.results[rows]["grouped_mm"]["timed"] == "forward"
    assert not [c for c in calls if c[0] == "dense" and c[2] is not None]  # never run inside a forward


@pytest.mark.parametrize("cls", [DeepseekOcrV1Family, DeepseekOcr2Family])
def test_the_plan_installs_on_both_families(cls, tiny_v1_dir, tiny_v2_dir):
    family = _family(cls, tiny_v1_dir, tiny_v2_dir)
    prepared = family.prepare(page_image((640, 200), "probe"), "<image>\nFree OCR.", ImageOptions())
    with torch.inference_mode():
        expected = family.model(**prepared.inputs).logits[:, -1]
    plan = experts.probe_and_install(family.model, sizes=(6, 48), decode_mask=family.decode_mask)
    assert plan is not None and set(plan.choice) == {6, 48}
    assert all(r["timed"] == "forward" for rows in (6, 48) for r in plan.results[rows].values() if r.get("ok"))
    assert experts.find_experts(family.model).config._experts_implementation == experts.NAME
    assert experts_forward.PROBE_KEY not in ALL_EXPERTS_FUNCTIONS
    with torch.inference_mode():
        got = family.model(**prepared.inputs).logits[:, -1]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
