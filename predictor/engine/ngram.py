"""DeepSeek-OCR's repetition guard: a windowed no-repeat n-gram rule over the generated tokens.

Without it the model loops (the most reported failure). The rule, as in DeepSeek's ``ngram_norepeat.py`` and vLLM's
``NoRepeatNGramLogitsProcessor``: with ``L`` generated ids so far, look only at the n-grams that start at positions
``max(0, L - window) .. L - n`` (so each lies wholly inside the last ``window`` tokens); each one whose first
``n - 1`` ids equal the current ``n - 1``-id suffix bans its last id for the next step. Whitelisted ids (the table
cell tags ``<td>``/``</td>``, which legitimately repeat) are never banned. Prompt tokens are never looked at: the
caller passes only generated ids. HF's built-in ``no_repeat_ngram_size`` differs (whole sequence, prompt included,
no whitelist), which is why this exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# (ngram_size, window) of DeepSeek's official PDF script ("window for fast"); its image script's 30/90 is our
# --ngram_size/--ngram_window default.
PDF_NGRAM = (20, 50)
MAX_NGRAM_SIZE = 200
MAX_NGRAM_WINDOW = 4096
TABLE_TOKENS = ("<td>", "</td>")


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



def table_token_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of ``<td>`` and ``</td>`` in this tokenizer (ids differ between checkpoints and test tokenizers)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    ids: set[int] = set()
    for token in TABLE_TOKENS:
        try:
            found = tokenizer.convert_tokens_to_ids(token)
        except (KeyError, ValueError):
            continue
        if isinstance(found, int) and found >= 0 and found != unk:
            ids.add(found)
    return frozenset(ids)
