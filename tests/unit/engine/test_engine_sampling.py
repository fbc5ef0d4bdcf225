"""A row's sampling failure fails that row only; temperatures too small to divide by sample as greedy."""

from __future__ import annotations

import torch

from predictor.engine.engine import Engine
from predictor.engine.types import SamplingParams
from predictor.errors import EngineFault
from predictor.families.base import ImageOptions
from tests.conftest import page_image
from tests.engine_rows import run_rows


def _params(n: int, **kw) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, min_new_tokens=n, ngram_size=0, **kw)


def test_overflowing_temperature_is_greedy_and_harms_nobody(family):
    """Issue: four long requests plus one with temperature 2e-39 all answered 500 (NaN -> multinomial raised)."""
    engine = Engine(family, "cpu", max_batch_size=8, max_batch_tokens=100_000, max_queue=8, request_timeout=120,
                    max_prefill_batch=4)
    engine.start()
    prepared = [family.prepare(page_image((640, 200), f"row {i}"), "<image>\nFree OCR.", ImageOptions())
                for i in range(5)]
    try:
        greedy_alone = run_rows(engine, [(prepared[4], _params(30))])[0]
        # 1e-45 is the smallest float32 (a subnormal): logits / T overflow to inf even for the tiny model's logits
        tiny = [_params(30, temperature=t, seed=1) for t in (2e-39, 1e-45)]
        items = [(p, _params(60)) for p in prepared[:3]] + [(prepared[4], tiny[0]), (prepared[4], tiny[1])]
        results = run_rows(engine, items)
    finally:
        engine.stop()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert [len(r.token_ids) for r in results] == [60, 60, 60, 30, 30]
    assert results[3].token_ids == greedy_alone.token_ids == results[4].token_ids


def test_a_row_without_a_valid_distribution_fails_alone(family):
    """temperature=inf turns banned logits into -inf/inf = NaN: that row fails with its own error, the rest finish."""
    engine = Engine(family, "cpu", max_batch_size=8, max_batch_tokens=100_000, max_queue=8, request_timeout=120,
                    max_prefill_batch=4)
    engine.start()
    prepared = [family.prepare(page_image((640, 200), f"row {i}"), "<image>\nFree OCR.", ImageOptions())
                for i in range(3)]
    try:
        alone = run_rows(engine, [(prepared[0], _params(40))])[0]
        items = [(prepared[0], _params(40)), (prepared[1], _params(40, temperature=float("inf"), seed=3)),
                 (prepared[2], _params(40))]
        first, poisoned, third = run_rows(engine, items)
        after = run_rows(engine, [(prepared[0], _params(40))])[0]  # the engine (and the scrubbed slot) still work
    finally:
        engine.stop()
    assert isinstance(poisoned, EngineFault) and "sampling" in poisoned.message
    assert first.token_ids == alone.token_ids and len(third.token_ids) == 40
    assert after.token_ids == alone.token_ids
    assert engine.in_flight == 0


def test_choose_flags_nan_rows_without_raising():
    from predictor.engine.sampler import RowSampler, choose

    def row(**kw):
        return RowSampler(SamplingParams(max_new_tokens=5, ngram_size=0, **kw), eos_token_id=0,
                          whitelist=frozenset(), device="cpu")

    logits = torch.tensor([[0.0, 3.0, 1.0], [float("nan"), 1.0, 2.0], [0.0, 1.0, 5.0], [1.0, 1.0, 1.0]])
    samplers = [row(), row(temperature=1.0, seed=0), row(temperature=1.0, seed=0), row(temperature=1e-30)]
    choice = choose(logits, samplers, [[], [], [], []])
    assert choice.failed.tolist() == [False, True, False, False]
    assert choice.tokens[0].item() == 1 and choice.tokens[3].item() == 0  # tiny temperature: argmax (first max)
    assert samplers[3].generator is None


def test_seeded_sampling_is_reproducible_alone_and_batched(family):
    """Each sampled row draws with its own generator; a top-p row batched with others changes nobody's draws."""
    engine = Engine(family, "cpu", max_batch_size=8, max_batch_tokens=100_000, max_queue=8, request_timeout=120,
                    max_prefill_batch=4)
    engine.start()
    prepared = [family.prepare(page_image((640, 200), f"seed {i}"), "<image>\nFree OCR.", ImageOptions())
                for i in range(3)]
    items = [(prepared[0], _params(30, temperature=0.9, seed=7)),
             (prepared[1], _params(30, temperature=1.3, top_p=0.8, seed=11)),
             (prepared[2], _params(30))]
    try:
        alone = [run_rows(engine, [item])[0] for item in items]
        batched = run_rows(engine, items)
        again = run_rows(engine, [items[0]])[0]
        greedy = run_rows(engine, [(prepared[0], _params(30))])[0]
    finally:
        engine.stop()
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone]
    assert again.token_ids == alone[0].token_ids
    assert alone[0].token_ids != greedy.token_ids  # it really sampled
