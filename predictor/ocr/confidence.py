"""Confidence of a page and of each block, and per-token log-probabilities in OpenAI's shape.

- page ``confidence``: mean probability of the page's generated tokens (each under the distribution it was drawn
  from), ``min_confidence`` the lowest one;
- block ``confidence`` / ``min_confidence``: the same over the block's content tokens: its label and its text
  (up to the next block), not the grounding tags or coordinates; a block without such tokens (a figure with an
  empty label) uses all of its tokens;
- ``logprobs``: one entry per token the caller receives. With clean text (the default) a token that lies wholly
  inside text the cleaning removed (a ``<|ref|>``...``<|/det|>`` group with its coordinates, ``<|grounding|>``)
  is left out; every other token is listed as generated, so the entries' ``token`` strings add up to the raw text
  minus those groups (whitespace as generated). With ``raw`` every token is listed. For the ``grounding`` task
  (labels as text) the labels' tokens are listed. Tokens cut off by a stop string are not listed.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from predictor.ocr.grounding import GROUNDING, REF, _Group, _Scanner
from predictor.ocr.tokens import TokenTexts

# JSON has no -inf: a token outside the sampled distribution (banned, or cut by top-p) gets OpenAI's floor
LOGPROB_FLOOR = -9999.0

Span = tuple[int, int]


@dataclass
class Layout:
    """Character spans of a raw output: what cleaning removes, and each box block's content."""

    removed: list[Span] = field(default_factory=list)
    blocks: list[list[Span]] = field(default_factory=list)  # per block with boxes: label span, then text spans
    groups: list[Span] = field(default_factory=list)  # per block with boxes: the whole group (tags, coordinates)


def layout(raw: str) -> Layout:
    """The spans behind ``grounding.parse``: it runs the same scanner and follows its cursor through ``raw``."""
    out = Layout()
    cursor = 0
    for piece in _Scanner().scan(raw, final=True):
        head = REF if isinstance(piece, _Group) else piece
        while not raw.startswith(head, cursor) and raw.startswith(GROUNDING, cursor):
            out.removed.append((cursor, cursor + len(GROUNDING)))  # the scanner drops these without a piece
            cursor += len(GROUNDING)
        if isinstance(piece, str):
            if out.blocks:
                out.blocks[-1].append((cursor, cursor + len(piece)))
            cursor += len(piece)
            continue
        label = (cursor + len(REF), cursor + len(REF) + len(piece.label))
        if piece.boxes is None:  # a ref without boxes: its tags go, its label stays as text
            out.removed += [(cursor, label[0]), (label[1], piece.end)]
            if out.blocks:
                out.blocks[-1].append(label)
        else:
            out.removed.append((cursor, piece.end))
            out.blocks.append([label])
            out.groups.append((cursor, piece.end))
        cursor = piece.end
    while raw.startswith(GROUNDING, cursor):
        out.removed.append((cursor, cursor + len(GROUNDING)))
        cursor += len(GROUNDING)
    return out


def _covered(spans: list[Span], intervals: list[Span]) -> list[int]:
    """Indices of tokens (``spans``, in text order) that overlap any of ``intervals``."""
    starts = [a for a, _ in spans]
    ends = [b for _, b in spans]
    found: set[int] = set()
    for s, e in intervals:
        if s >= e:
            continue
        first = bisect.bisect_right(ends, s)  # first token ending after s
        last = bisect.bisect_left(starts, e)  # tokens starting before e
        found.update(i for i in range(first, last) if spans[i][0] < spans[i][1])
    return sorted(found)


def _inside(spans: list[Span], removed: list[Span]) -> list[bool]:
    """Per token: wholly inside one of the (sorted, disjoint) ``removed`` spans."""
    result, j = [], 0
    for a, b in spans:
        while j < len(removed) and removed[j][1] <= a:
            j += 1
        result.append(b > a and j < len(removed) and removed[j][0] <= a and b <= removed[j][1])
    return result


def summary(logprobs: list[float]) -> tuple[float | None, float | None]:
    """(mean probability, lowest probability) of tokens; (None, None) when there are none."""
    if not logprobs:
        return None, None
    probs = [math.exp(lp) for lp in logprobs]
    return round(sum(probs) / len(probs), 4), round(min(probs), 4)


def block_confidences(raw: str, spans: list[Span], logprobs: list[float], out: Layout) -> list[dict[str, Any]]:
    """``confidence`` / ``min_confidence`` per block with boxes, in ``grounding.parse`` order."""
    result = []
    for content, group in zip(out.blocks, out.groups, strict=True):
        tokens = _covered(spans, content) or _covered(spans, [group])
        mean, low = summary([logprobs[i] for i in tokens if i < len(logprobs)])
        result.append({"confidence": mean, "min_confidence": low})
    return result


def _floor(value: float) -> float:
    return value if value >= LOGPROB_FLOOR else LOGPROB_FLOOR


def logprob_entries(ids: list[int], spans: list[Span], logprobs: list[float],
                    top: list[list[tuple[int, float]]] | None, keep: list[bool], texts: TokenTexts,
                    ) -> list[dict[str, Any]]:
    """OpenAI ``ChatCompletionTokenLogprob`` dicts for the kept tokens."""
    entries = []
    for i, token in enumerate(ids):
        if not keep[i] or i >= len(logprobs):
            continue
        piece = texts.piece(token)
        alternatives = []
        for alt, lp in (top[i] if top is not None and i < len(top) else []):
            alt_piece = texts.piece(alt)
            alternatives.append({"token": alt_piece.decode("utf-8", errors="replace"), "logprob": _floor(lp),
                                 "bytes": list(alt_piece)})
        entries.append({"token": piece.decode("utf-8", errors="replace"), "logprob": _floor(logprobs[i]),
                        "bytes": list(piece), "top_logprobs": alternatives})
    return entries


def kept_tokens(spans: list[Span], text_end: int, out: Layout | None, labels_only: bool) -> list[bool]:
    """Which tokens the caller receives (see the module doc): ``out`` None means raw text (all of them)."""
    if out is None:
        keep = [True] * len(spans)
    elif labels_only:
        labels = set(_covered(spans, [b[0] for b in out.blocks]))
        keep = [i in labels for i in range(len(spans))]
    else:
        keep = [not inside for inside in _inside(spans, out.removed)]
    if text_end > 0:  # tokens after a stop string (empty spans at the very end) were not received
        keep = [k and not (a >= text_end and b >= text_end) for k, (a, b) in zip(keep, spans, strict=True)]
    return keep
