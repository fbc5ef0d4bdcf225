"""Captions tied to what they caption: an ``image_caption`` / ``table_caption`` block gets ``caption_of``, the
index of the ``image`` / ``table`` block on the same page it belongs to, and that block gets ``caption``.

By geometry, on the 0-999 boxes: the candidate must overlap the caption horizontally and lie directly above or
below it (a small overlap tolerated, at most ``MAX_GAP`` apart); the nearest wins. A caption with no such block
gets ``caption_of: null``; a figure or table with several captions points to the nearest.
"""

from __future__ import annotations

from typing import Any

TARGETS = {"image_caption": "image", "table_caption": "table"}
MAX_GAP = 120  # on the 0-999 scale: ~12 % of the page height
OVERLAP_TOLERANCE = 15  # boxes drawn by the model may overlap a little


def _union(boxes: list[list[int]]) -> list[int]:
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _gap(caption: list[int], target: list[int]) -> int | None:
    """Vertical distance when ``caption`` is directly below or above ``target``; None when it is not."""
    if min(caption[2], target[2]) <= max(caption[0], target[0]):
        return None  # no horizontal overlap
    below, above = caption[1] - target[3], target[1] - caption[3]
    gap = max(below, above)
    return max(gap, 0) if -OVERLAP_TOLERANCE <= gap <= MAX_GAP else None


def link(blocks: list[dict[str, Any]]) -> None:
    """Set ``caption_of`` on every caption block and ``caption`` on the figures and tables that have one."""
    best: dict[int, tuple[int, int]] = {}  # target index -> (gap, caption index)
    for i, block in enumerate(blocks):
        wanted = TARGETS.get(block.get("label", ""))
        if wanted is None:
            continue
        block["caption_of"] = None
        if not block.get("boxes"):
            continue
        box = _union(block["boxes"])
        candidates = [(gap, j) for j, other in enumerate(blocks) if other.get("label") == wanted and other.get("boxes")
                      for gap in [_gap(box, _union(other["boxes"]))] if gap is not None]
        if not candidates:
            continue
        gap, target = min(candidates)
        block["caption_of"] = target
        if target not in best or (gap, i) < best[target]:
            best[target] = (gap, i)
    for target, (_, caption) in best.items():
        blocks[target]["caption"] = caption
