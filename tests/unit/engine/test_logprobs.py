"""Token log-probabilities: of the distribution each token was drawn from, carried by the step's one read."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from predictor.engine.sampler import RowSampler, choose
from predictor.engine.types import SamplingParams
from predictor.families.base import ImageOptions, LoadSettings
from predictor.families.v2 import DeepseekOcr2Family
from tests.conftest import page_image
from tests.engine_rows import run_rows, running_engine


@pytest.fixture(scope="module")
def family(tiny_v2_dir: str) -> DeepseekOcr2Family:
    fam = DeepseekOcr2Family()
    fam.load(tiny_v2_dir, LoadSettings("cpu", torch.float32, "sdpa", None))
    return fam


def _row(**kw) -> RowSampler:
    kw.setdefault("ngram_size", 0)
    return RowSampler(SamplingParams(max_new_tokens=5, **kw), eos_token_id=0, whitelist=frozenset(), device="cpu")


def test_greedy_rows_report_log_softmax_and_sorted_top_k():
    torch.manual_seed(0)
    logits = torch.randn(3, 50) * 3
    expected = torch.log_softmax(logits, dim=-1)
    samplers = [_row(top_logprobs=5), _row(), _row(top_logprobs=20)]
    picked = choose(logits.clone(), samplers, [[], [], []]).to_host([5, 0, 20])
    for row, got in enumerate(picked):
        assert got.token == int(expected[row].argmax())
        assert got.logprob == pytest.approx(float(expected[row, got.token]), abs=1e-5)
    assert picked[1].top is None and len(picked[0].top) == 5 and len(picked[2].top) == 20
    for row in (0, 2):
        values = [lp for _, lp in picked[row].top]
        assert values == sorted(values, reverse=True)
        assert picked[row].top[0][0] == picked[row].token  # the chosen token is among them (first, for greedy)
        for token, lp in picked[row].top:
            assert lp == pytest.approx(float(expected[row, token]), abs=1e-5)


def test_banned_tokens_are_outside_the_distribution():
    """After the guard's bans the distribution is renormalised over what is left."""
    logits = torch.tensor([[0.0, 5.0, 4.0, 1.0]])
    sampler = _row(top_logprobs=4)
    sampler.params = SamplingParams(max_new_tokens=5, ngram_size=0, top_logprobs=4, ignore_eos=True)  # bans id 0
    picked = choose(logits.clone(), [sampler], [[]]).to_host([4])[0]
    kept = torch.log_softmax(torch.tensor([5.0, 4.0, 1.0]), dim=-1)
    assert picked.token == 1 and picked.logprob == pytest.approx(float(kept[0]), abs=1e-6)
    assert picked.top[-1] == (0, -math.inf)


def test_sampled_rows_report_the_sampled_distribution():
    """Temperature and top-p change what is drawn from: the log-probability is of that distribution."""
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0]])
    temperature, top_p = 0.7, 0.8
    probs = torch.softmax(logits[0] / temperature, dim=-1)
    order = probs.argsort(descending=True)
    kept = torch.zeros_like(probs)
    mass = 0.0
    for i in order.tolist():
        if mass > top_p:
            break
        kept[i] = probs[i]
        mass += float(probs[i])
    kept = kept / kept.sum()
    seen = set()
    for seed in range(40):
        sampler = _row(temperature=temperature, top_p=top_p, seed=seed, top_logprobs=3)
        picked = choose(logits.clone(), [sampler], [[]]).to_host([3])[0]
        seen.add(picked.token)
        assert kept[picked.token] > 0
        assert picked.logprob == pytest.approx(math.log(float(kept[picked.token])), abs=1e-5)
        live = [int(t) for t in order if kept[t] > 0][:3]
        assert [t for t, _ in picked.top][:len(live)] == live
        for token, lp in picked.top:
            assert lp == (pytest.approx(math.log(float(kept[token])), abs=1e-5) if kept[token] > 0 else -math.inf)
    assert len(seen) > 1  # it really sampled
    greedy = choose(logits.clone(), [_row()], [[]]).to_host([0])[0]
    assert greedy.logprob == pytest.approx(float(torch.log_softmax(logits[0], -1)[0]), abs=1e-6)


def test_greedy_logprobs_match_transformers_generate(family):
    """The engine's greedy log-probabilities are log_softmax of the model's own scores (transformers generate)."""
    prepared = family.prepare(page_image((640, 200), "logprobs"), "<image>\nFree OCR.", ImageOptions())
    n = 16
    with torch.no_grad():
        ref = family.model.generate(**copy.copy(prepared).inputs, max_new_tokens=n, min_new_tokens=n,
                                    do_sample=False, output_scores=True, return_dict_in_generate=True)
    expected_ids = ref.sequences[0, prepared.prompt_tokens:].tolist()
    scores = torch.log_softmax(torch.stack(ref.scores)[:, 0].float(), dim=-1)
    expected = [float(scores[i, t]) for i, t in enumerate(expected_ids)]
    expected_top = [torch.topk(scores[i], 5) for i in range(n)]
    engine = running_engine(family, max_batch_size=4, max_prefill_batch=2)
    params = SamplingParams(max_new_tokens=n, min_new_tokens=n, ngram_size=0, top_logprobs=5)
    other = family.prepare(page_image((300, 900), "another row"), "<image>\nFree OCR.", ImageOptions())
    try:
        got, _ = run_rows(engine, [(prepared, params), (other, SamplingParams(max_new_tokens=8, ngram_size=0))])
    finally:
        engine.stop()
    assert got.token_ids == expected_ids
    assert len(got.logprobs) == n
    assert max(abs(a - b) for a, b in zip(got.logprobs, expected, strict=True)) < 1e-4
    for top, ref_top in zip(got.top_logprobs, expected_top, strict=True):
        assert [t for t, _ in top] == ref_top.indices.tolist()
        assert max(abs(lp - float(v)) for (_, lp), v in zip(top, ref_top.values, strict=True)) < 1e-4
