"""Incremental detokenization: emit text as tokens arrive without splitting multi-byte characters and
without re-decoding the whole output at every step."""

from __future__ import annotations

from typing import Any

_REPLACEMENT = "\ufffd"
# Tokens decoded together with the new ones, so that byte-level merges and leading-space rules of the
# tokenizer give the same characters as a full decode.
_CONTEXT = 5


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any, skip_ids: frozenset[int] = frozenset()):
        self._tokenizer = tokenizer
        self._skip = skip_ids
        self._ids: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # ids before this are already emitted
        self.text = ""

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode([i for i in ids if i not in self._skip], skip_special_tokens=False,
                                      clean_up_tokenization_spaces=False)

    def add(self, token_id: int) -> str:
        """Append one token id; return the newly completed text (may be empty)."""
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix:self._read])
        after = self._decode(self._ids[self._prefix:])
        if after.endswith(_REPLACEMENT) or len(after) <= len(before):
            return ""  # an incomplete UTF-8 sequence: wait for the next token
        delta = after[len(before):]
        self._read = len(self._ids)
        self._prefix = max(0, self._read - _CONTEXT)
        self.text += delta
        return delta

    def flush(self) -> str:
        """Text still held back at the end (e.g. a dangling partial character)."""
        full = self._decode(self._ids)
        delta = full[len(self.text):] if full.startswith(self.text) else ""
        self.text += delta
        return delta
