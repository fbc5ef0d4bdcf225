"""The incremental guard bans exactly what the reference rule bans, step by step."""

from __future__ import annotations

import random

import pytest

from predictor.engine.ngram import NGramGuard
from predictor.engine.ngram_rolling import RollingNGramGuard


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
