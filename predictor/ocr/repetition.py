"""Is a page looping? The evidence a looping page leaves, read from its raw output and its guard's bans.

A page is suspected only when it was cut by the token cap (``finish_reason: length``): a page that ended on its
own is never called a loop, however repetitive (dense tables, long lists). Then any one of:

- ``ngram``: the output ends in the same span (1..``MAX_PERIOD`` characters) repeated back to back at least
  ``MIN_REPEATS`` times over at least ``MIN_RUN_CHARS`` characters;
- ``line``: among the last ``TAIL_LINES`` non-empty lines, one line appears at least ``MIN_LINE_REPEATS`` times
  (grounding coordinates are ignored: the same text with other boxes is the same line);
- ``guard``: over the last ``BAN_WINDOW`` steps (or all, if fewer), the repetition guard banned a token at least
  once per ``BAN_RATE`` x n steps (n: the guard's n-gram size) and at least ``MIN_BANS`` times. A model that keeps
  copying itself is banned about once every n tokens: after a ban breaks the copy, the next n - 1 tokens must
  match again before the guard fires. Such a loop leaves no exact repetition (each copy is slightly broken), so
  this is its only trace. A normal page hardly ever repeats n - 1 tokens within the guard's window.

A span made only of table-cell tags (``<td>``, ``</td>``, ``<tr>``, ``</tr>``) and whitespace does not count: empty
cells legitimately repeat (DeepSeek's guard whitelists them too).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

MAX_PERIOD = 1000
MIN_REPEATS = 4
MIN_RUN_CHARS = 200
TAIL_CHARS = 16_000
TAIL_LINES = 40
MIN_LINE_REPEATS = 10
BAN_WINDOW = 512
BAN_RATE = 3
MIN_BANS = 4
SPAN_CHARS = 200  # the reported span is cut to this many characters

_DET = re.compile(r"<\|det\|>.*?<\|/det\|>")
_EMPTY = re.compile(r"(?:</?t[dr]>|\s)*")


def _has_content(text: str) -> bool:
    return not _EMPTY.fullmatch(text)


def _periodic(tail: str, period: int, length: int) -> bool:
    """The last ``length`` characters of ``tail`` repeat with ``period``."""
    return tail[len(tail) - length:] == tail[len(tail) - length - period:len(tail) - period]


def repeated_tail(text: str) -> dict[str, Any] | None:
    """The shortest span the end of ``text`` repeats back to back (see the module doc), or None."""
    tail = text[-TAIL_CHARS:]
    offset = len(text) - len(tail)
    for period in range(1, min(MAX_PERIOD, len(tail) // MIN_REPEATS) + 1):
        need = max(period * (MIN_REPEATS - 1), MIN_RUN_CHARS - period)
        if need + period > len(tail) or not _periodic(tail, period, need):
            continue
        low, high = need, len(tail) - period  # the periodic run is at least ``low`` long: find its length
        while low < high:
            mid = (low + high + 1) // 2
            if _periodic(tail, period, mid):
                low = mid
            else:
                high = mid - 1
        start = len(tail) - low - period
        start += _shift(tail[start:start + period])
        unit = tail[start:start + period]
        if not _has_content(unit):
            continue
        return {"text": unit[:SPAN_CHARS], "repeats": (len(tail) - start) // period, "start": offset + start,
                "end": len(text)}
    return None


def _shift(unit: str) -> int:
    """Where a readable rotation of a repeating unit starts: after its first newline, else at its first tag."""
    newline = unit.find("\n")
    if 0 <= newline < len(unit) - 1:
        return newline + 1
    tag = unit.find("<")
    return max(tag, 0)


def repeated_line(text: str, minimum: int = MIN_LINE_REPEATS) -> dict[str, Any] | None:
    """The most frequent of the last ``TAIL_LINES`` non-empty lines, when it appears ``minimum`` times or more."""
    lines = [line.strip() for line in _DET.sub("", text[-TAIL_CHARS:]).splitlines()]
    lines = [line for line in lines if line and _has_content(line)][-TAIL_LINES:]
    if not lines:
        return None
    line, count = Counter(lines).most_common(1)[0]
    if count < minimum:
        return None
    start = text.find(line, max(0, len(text) - TAIL_CHARS))
    return {"text": line[:SPAN_CHARS], "repeats": count, "start": start, "end": len(text)}


def guard_bans(ban_steps: list[int], generated: int) -> int:
    """Steps among the last ``BAN_WINDOW`` at which the guard banned a token."""
    return sum(1 for step in ban_steps if step >= generated - BAN_WINDOW)


def guard_looping(ban_steps: list[int], generated: int, ngram_size: int) -> bool:
    if ngram_size <= 0:
        return False
    window = min(BAN_WINDOW, generated)
    return guard_bans(ban_steps, generated) >= max(MIN_BANS, window / (BAN_RATE * ngram_size))


def assess(raw: str, finish_reason: str, ban_steps: list[int], generated: int,
           ngram_size: int = 30) -> dict[str, Any]:
    """``{"suspected", "reason", "span"}`` for one page's raw output (see the module doc for the rule)."""
    verdict: dict[str, Any] = {"suspected": False, "reason": None, "span": None}
    if finish_reason != "length":
        return verdict
    span = repeated_tail(raw)
    if span is not None:
        return {"suspected": True, "reason": "ngram", "span": span}
    span = repeated_line(raw)
    if span is not None:
        return {"suspected": True, "reason": "line", "span": span}
    if guard_looping(ban_steps, generated, ngram_size):
        return {"suspected": True, "reason": "guard", "span": repeated_line(raw, minimum=2),
                "guard_bans": guard_bans(ban_steps, generated)}
    return verdict
