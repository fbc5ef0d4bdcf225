"""DeepSeek-OCR's repetition guard: a windowed no-repeat n-gram rule over the generated tokens.

Without it the model loops (the most reported failure). The rule, as in DeepSeek's ``ngram_norepeat.py`` and vLLM's
``NoRepeatNGramLogitsProcessor``: with ``L`` generated ids so far, look only at the n-grams that start at positions
``max(0, L - window) .. L - n`` (so each lies wholly inside the last ``window`` tokens); each one whose first
``n - 1`` ids equal the current ``n - 1``-id suffix bans its last id for the next step. Whitelisted ids (the table
cell tags ``<td>``/``</td>``, which legitimately repeat) are never banned. Prompt tokens are never looked at: the
caller passes only generated ids. HF's built-in ``no_repeat_ngram_size`` differs (whole sequence, prompt included,
no whitelist), which is why this exists. The engine keeps the rule incrementally (``ngram_rolling``); the tests
hold a plain rescanning version as the oracle.
"""

from __future__ import annotations

from typing import Any

from predictor.constants import TABLE_TOKENS


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
