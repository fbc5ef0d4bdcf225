"""The rule of ``predictor.engine.ngram``, kept incrementally for one generating row.

Rescanning the window at every step costs tens of microseconds in Python per row; at batch 8+ that dominated a CPU
decode step. This index adds the one n-gram completed by each new token and drops those that
left the window, so a step costs one dict lookup. Tests check it against a plain rescanning oracle on random sequences.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


class RollingNGramGuard:
    def __init__(self, ngram_size: int, window: int, whitelist: frozenset[int] = frozenset()):
        self.ngram_size = ngram_size
        self.window = window
        self.whitelist = frozenset(whitelist)
        self._reset()

    def _reset(self) -> None:
        self._seen = 0  # generated ids already indexed
        self._index: dict[tuple[int, ...], deque[tuple[int, int]]] = {}  # prefix -> (start, follower)
        self._order: deque[tuple[int, tuple[int, ...]]] = deque()  # (start, prefix) in start order

    def banned(self, generated: Sequence[int]) -> set[int]:
        n = self.ngram_size
        length = len(generated)
        if n <= 0:
            return set()
        if length < self._seen:
            self._reset()  # not an extension of what we indexed: start over
        # index every n-gram completed since the last call (start <= length - n)
        for start in range(max(0, self._seen - n + 1), length - n + 1):
            prefix = tuple(generated[start:start + n - 1])
            self._index.setdefault(prefix, deque()).append((start, generated[start + n - 1]))
            self._order.append((start, prefix))
        self._seen = length
        oldest = max(0, length - self.window)
        while self._order and self._order[0][0] < oldest:
            _, prefix = self._order.popleft()
            entries = self._index[prefix]
            entries.popleft()
            if not entries:
                del self._index[prefix]
        if length < n:
            return set()
        followers = self._index.get(tuple(generated[length - n + 1:]))
        if not followers:
            return set()
        return {token for _, token in followers} - self.whitelist
