"""Generated token ids -> their bytes and the characters of the decoded text each one covers.

Block confidences and per-token log-probabilities need to know which characters of the output a token produced.
DeepSeek's tokenizer is byte-level BPE: a token's bytes follow from its vocabulary string (GPT-2's byte alphabet)
and the decoded text is their concatenation, so the mapping is exact and costs one dictionary look-up per token.
For another tokenizer, or when the concatenation does not give the decoded text, the spans come from an
incremental decode instead (exact, slower).
"""

from __future__ import annotations

import bisect
import functools
import threading
from typing import Any

from predictor.engine.detokenizer import IncrementalDetokenizer


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, inverted (the alphabet of byte-level BPE vocabularies)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    return type(decoder).__name__ == "ByteLevel" or "ByteLevel" in repr(decoder)[:40]


class TokenTexts:
    """Per tokenizer: token id -> bytes (cached), and token spans in a decoded text."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.byte_level = _is_byte_level(tokenizer)
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        self._added = {int(i): str(getattr(t, "content", t)) for i, t in added.items()}
        self._cache: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def piece(self, token_id: int) -> bytes:
        found = self._cache.get(token_id)
        if found is None:
            found = self._bytes(token_id)
            with self._lock:
                self._cache[token_id] = found
        return found

    def _bytes(self, token_id: int) -> bytes:
        if token_id in self._added:
            return self._added[token_id].encode("utf-8")
        if self.byte_level:
            token = self.tokenizer.convert_ids_to_tokens(token_id)
            table = _byte_decoder()
            if isinstance(token, str) and all(c in table for c in token):
                return bytes(table[c] for c in token)
        return self.tokenizer.decode([token_id], skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False).encode("utf-8")

    def text(self, token_id: int) -> str:
        return self.piece(token_id).decode("utf-8", errors="replace")

    def spans(self, ids: list[int], text: str) -> list[tuple[int, int]]:
        """``(start, end)`` characters of ``text`` (the decoded ``ids``, maybe cut at a stop string) per token;
        a token past the end of ``text`` gets an empty span at the end."""
        pieces = [self.piece(i) for i in ids]
        joined = b"".join(pieces)
        decoded = joined.decode("utf-8", errors="replace")
        if not decoded.startswith(text):
            return self._incremental(ids, text)
        starts = [0]  # byte offset where each character of ``decoded`` starts
        for char in decoded:
            starts.append(starts[-1] + len(char.encode("utf-8")))
        spans, offset, limit = [], 0, len(text)
        for piece in pieces:
            first = bisect.bisect_right(starts, offset) - 1
            offset += len(piece)
            last = bisect.bisect_left(starts, offset)
            spans.append((min(first, limit), min(last, limit)))
        return spans

    def _incremental(self, ids: list[int], text: str) -> list[tuple[int, int]]:
        detok = IncrementalDetokenizer(self.tokenizer)
        spans, limit = [], len(text)
        for token in ids:
            start = len(detok.text)
            detok.add(token)
            spans.append((min(start, limit), min(len(detok.text), limit)))
        return spans
