"""The incremental guard bans exactly what the reference rule bans, step by step."""

from __future__ import annotations

import random

import pytest

from predictor.engine.ngram_rolling import RollingNGramGuard
from tests.ngram_oracle import NGramGuard


@pytest.mark.parametrize(("n", "window", "vocab"), [(1, 5, 4), (2, 6, 3), (3, 10, 4), (4, 9, 3), (30, 90, 3),
                                                     (20, 50, 2), (5, 5, 2)])
def test_matches_reference_rule_at_every_step(n, window, vocab):
    rng = random.Random(n * 1000 + window)
    whitelist = frozenset({0})
    for _ in range(5):
        reference, rolling = NGramGuard(n, window, whitelist), RollingNGramGuard(n, window, whitelist)
        ids: list[int] = []
        for _ in range(300):
            assert rolling.banned(ids) == reference.banned(ids), (ids[-window:], n, window)
            ids.append(rng.randrange(vocab))


def test_restart_on_a_shorter_sequence():
    guard = RollingNGramGuard(2, 10)
    assert guard.banned([1, 2, 1]) == {2}
    assert guard.banned([5, 6]) == set()  # a different, shorter history: re-indexed from scratch
    assert guard.banned([5, 6, 5]) == {6}


def test_disabled_when_size_is_zero():
    assert RollingNGramGuard(0, 10).banned([1, 1, 1, 1]) == set()


def test_sampler_masks_banned_ids_but_not_whitelisted_ones():
    """A greedy row never picks what the guard bans, except the whitelisted table tags."""
    import torch

    from predictor.engine.sampler import RowSampler, choose
    from predictor.engine.types import SamplingParams

    def row_sampler():  # one per row: a guard indexes its own row's ids
        return RowSampler(SamplingParams(max_new_tokens=10, ngram_size=2, ngram_window=50), eos_token_id=9,
                          whitelist=frozenset({4}), device="cpu")

    generated = [3, 1, 3, 4, 3]  # the suffix (3,) was followed by 1 and by 4
    logits = torch.zeros(10)
    logits[1], logits[4], logits[7] = 5.0, 4.0, 3.0
    other = logits.clone()  # a second row in the same batch with nothing banned

    def pick(row_logits, ids):
        return choose(torch.stack([row_logits, other]), [row_sampler(), row_sampler()],
                      [ids, [5, 6]]).tokens.tolist()

    assert pick(logits.clone(), generated) == [4, 1]  # 1 banned, 4 whitelisted; the other row unaffected
    logits[4] = 0.0
    assert pick(logits.clone(), generated) == [7, 1]
    assert pick(logits.clone(), [5, 6]) == [1, 1]  # nothing banned
