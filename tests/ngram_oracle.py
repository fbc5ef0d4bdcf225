"""The n-gram repetition rule written plainly, rescanning the window at every step: the oracle the engine's
incremental ``RollingNGramGuard`` is checked against."""

from __future__ import annotations

from collections.abc import Sequence


class NGramGuard:
    def __init__(self, ngram_size: int, window: int, whitelist: frozenset[int] = frozenset()):
        self.ngram_size = ngram_size
        self.window = window
        self.whitelist = frozenset(whitelist)

    def banned(self, generated: Sequence[int]) -> set[int]:
        """Ids the rule forbids as the next token (whitelisted ids already removed)."""
        n = self.ngram_size
        length = len(generated)
        if n <= 0 or length < n:
            return set()
        start = max(0, length - self.window)
        stop = length - n + 1  # exclusive: the n-gram starting at length-n+1 would need the next token
        if start >= stop:
            return set()
        if n == 1:
            # Every id in the window completes a repeated 1-gram. (DeepSeek's code computes the suffix with
            # ids[-0:], which is the whole list, and so never bans anything at n=1; we keep the rule's meaning.)
            return set(generated[start:stop]) - self.whitelist
        return self._matches(generated, start, stop) - self.whitelist

    def _matches(self, ids: Sequence[int], start: int, stop: int) -> set[int]:
        n = self.ngram_size
        suffix = list(ids[len(ids) - n + 1:])
        last = suffix[-1]
        # Test the cheap "same last prefix token" condition first; full comparisons are then rare.
        found: set[int] = set()
        for i in range(start, stop):
            if ids[i + n - 2] == last and list(ids[i:i + n - 1]) == suffix:
                found.add(ids[i + n - 1])
        return found
