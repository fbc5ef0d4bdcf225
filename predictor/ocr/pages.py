"""PDF page selection (``pages: "1-3,7"``, 1-based) and render resolution (``dpi``), parsed and checked.

The syntax is checked when options are parsed (``"0"``, ``"3-1"`` are refused at once); the upper end needs the
document, so ``select`` checks it against the page count and the request's page limit before anything renders.
Pure Python: the batch client uses the same parser.
"""

from __future__ import annotations

import re
from typing import Any

from predictor.errors import InvalidRequest

MIN_DPI, MAX_DPI = 72, 300
MAX_SPEC_CHARS = 200
_PART = re.compile(r"^\s*(\d{1,6})\s*(?:-\s*(\d{1,6})\s*)?$")

PageRanges = tuple[tuple[int, int], ...]  # inclusive 1-based (first, last) pairs, as given


def parse_pages(value: Any, name: str = "pages") -> PageRanges:
    """``"1-3,7"`` / ``7`` -> ((1, 3), (7, 7)); a 400 naming ``name`` for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string such as \"1-3,7\", got {type(value).__name__}", param=name)
    if not value.strip() or len(value) > MAX_SPEC_CHARS:
        raise InvalidRequest(f"{name} must be page numbers and ranges such as \"1-3,7\" (at most "
                             f"{MAX_SPEC_CHARS} characters)", param=name)
    ranges = []
    for part in value.split(","):
        match = _PART.match(part)
        if not match:
            raise InvalidRequest(f"{name}: {part.strip()[:20]!r} is not a page number or a range such as 1-3",
                                 param=name)
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if first < 1:
            raise InvalidRequest(f"{name}: pages are numbered from 1, got {first}", param=name)
        if last < first:
            raise InvalidRequest(f"{name}: the range {first}-{last} ends before it starts", param=name)
        ranges.append((first, last))
    return tuple(ranges)


def select(ranges: PageRanges | None, count: int, max_pages: int, field: str, name: str = "pages") -> list[int]:
    """The selected 0-based page indices, ascending and each once; every page when ``ranges`` is None."""
    if ranges is None:
        return list(range(count))
    past = max(last for _, last in ranges)
    if past > count:
        raise InvalidRequest(f"{name}: page {past} is past the end of {field} ({count} pages)", param=name)
    chosen = sorted({page - 1 for first, last in ranges for page in range(first, last + 1)})
    if len(chosen) > max_pages:
        raise InvalidRequest(f"{name} selects {len(chosen)} pages of {field}, over the limit of {max_pages} "
                             "per request", param=name)
    return chosen


def parse_dpi(value: Any, name: str = "dpi") -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be an integer between {MIN_DPI} and {MAX_DPI}, got "
                             f"{type(value).__name__}", param=name)
    if not MIN_DPI <= value <= MAX_DPI:
        raise InvalidRequest(f"{name} must be between {MIN_DPI} and {MAX_DPI}, got {value}", param=name)
    return value
