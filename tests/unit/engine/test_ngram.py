from __future__ import annotations

import random

import pytest

from predictor.engine.ngram import table_token_ids
from tests.ngram_oracle import NGramGuard


def brute_force(ids: list[int], n: int, window: int, whitelist: frozenset[int] = frozenset()) -> set[int]:
    """The rule spelled out the slow way: n-grams lying wholly inside the last `window` ids whose first n-1 ids
    equal the last n-1 ids ban their last id."""
    if n <= 0 or len(ids) < n:
        return set()
    tail = ids[-window:]
    suffix = ids[len(ids) - n + 1:]
    grams = [tail[i:i + n] for i in range(len(tail) - n + 1)]
    return {g[-1] for g in grams if g[:-1] == suffix} - whitelist


def test_repeated_pattern_bans_its_continuation() -> None:
    guard = NGramGuard(3, 50)
    # "1 2 3 4 1 2" -> the 3-gram (1, 2, 3) would repeat: 3 is banned.
    assert guard.banned([1, 2, 3, 4, 1, 2]) == {3}


def test_several_continuations_are_all_banned() -> None:
    assert NGramGuard(2, 50).banned([5, 1, 5, 2, 5]) == {1, 2}


def test_window_edge() -> None:
    ids = [1, 2, 9, 5, 1, 2]
    # window 6: the n-gram (1, 2, 9) starts at the first id of the window -> considered.
    assert NGramGuard(3, 6).banned(ids) == {9}
    # window 5: it starts one id before the window (its tail is inside) -> not considered.
    assert NGramGuard(3, 5).banned(ids) == set()


def test_ngram_overlapping_the_suffix_counts() -> None:
    # (7, 7, 7) overlaps the current suffix (7, 7); DeepSeek's search range includes it.
    assert NGramGuard(3, 10).banned([7, 7, 7]) == {7}
    assert NGramGuard(3, 10).banned([7, 7]) == set()


def test_whitelist_is_never_banned() -> None:
    td, end_td = 100, 101
    ids = [td, 4, end_td, td, 4]
    assert NGramGuard(2, 50).banned(ids) == {end_td}
    assert NGramGuard(2, 50, frozenset({td, end_td})).banned(ids) == set()


def test_history_shorter_than_ngram_bans_nothing() -> None:
    assert NGramGuard(30, 90).banned([1] * 29) == set()
    assert NGramGuard(30, 90).banned([1] * 30) == {1}


def test_window_smaller_than_ngram_bans_nothing() -> None:
    assert NGramGuard(5, 4).banned([1] * 20) == set()


def test_disabled_guard() -> None:
    assert NGramGuard(0, 90).banned([1] * 100) == set()


def test_unigram_bans_window_tokens() -> None:
    assert NGramGuard(1, 3).banned([1, 2, 3, 4]) == {2, 3, 4}


def test_only_generated_ids_are_seen() -> None:
    # The caller passes generated ids only: a pattern that repeats only across the prompt boundary
    # (prompt "1 2 3", generated "1 2") bans nothing, while the same ids as one generated list would.
    prompt, generated = [1, 2, 3], [1, 2]
    guard = NGramGuard(3, 90)
    assert guard.banned(generated) == set()
    assert guard.banned(prompt + generated) == {3}


@pytest.mark.parametrize(("n", "window"), [(1, 5), (2, 7), (3, 10), (4, 4), (5, 30), (20, 50), (30, 90)])
def test_matches_brute_force_on_random_sequences(n: int, window: int) -> None:
    rng = random.Random(n * 1000 + window)
    whitelist = frozenset({0})
    for _ in range(300):
        alphabet = rng.choice([2, 3, 5])
        unit = [rng.randrange(alphabet) for _ in range(rng.randint(1, 6))]
        ids = (unit * 200)[: rng.randint(0, 150)] if rng.random() < 0.5 else [
            rng.randrange(alphabet) for _ in range(rng.randint(0, 150))]
        assert NGramGuard(n, window, whitelist).banned(ids) == brute_force(ids, n, window, whitelist)


class _FakeTokenizer:
    unk_token_id = 0

    def __init__(self, vocab: dict[str, int]):
        self.vocab = vocab

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.vocab.get(token, self.unk_token_id)


def test_table_token_ids_are_looked_up() -> None:
    assert table_token_ids(_FakeTokenizer({"<td>": 128821, "</td>": 128822})) == {128821, 128822}
    assert table_token_ids(_FakeTokenizer({"<td>": 7})) == {7}  # </td> unknown -> unk id skipped
    assert table_token_ids(_FakeTokenizer({})) == frozenset()


def test_table_token_ids_with_the_test_tokenizer() -> None:
    from predictor.testing.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    ids = table_token_ids(tokenizer)
    assert ids == {tokenizer.convert_tokens_to_ids("<td>"), tokenizer.convert_tokens_to_ids("</td>")}
    assert len(ids) == 2
