"""Decode shapes in buckets: how many rows a padded decode forward covers, and which spans a step can attend.

A CUDA graph replays one fixed shape, so decode runs over a few batch sizes only: a step for ``n`` live rows
runs ``batch_bucket(n)`` rows, the extra ones hidden padding rows (forward.py). The attended span is already
bucketed by the slot cache (kv.py, ``SPAN_BUCKET``). Pure functions, no device: tested on CPU.
"""

from __future__ import annotations

from predictor.engine.kv import bucketed_span

SMALL = (1, 2, 4, 8)  # powers of two while a padding row costs as much as a live one
STRIDE = 8  # then multiples of 8: at most 7 padding rows, and few shapes to capture


def batch_buckets(max_rows: int) -> tuple[int, ...]:
    """The batch sizes a decode step runs at, for batches of up to ``max_rows``: 1, 2, 4, 8, 16, 24, 32, ...,
    always ending at ``max_rows`` itself."""
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    sizes = [b for b in SMALL if b < max_rows]
    sizes += range(2 * STRIDE, max_rows, STRIDE)
    return tuple(sorted(set(sizes))) + (max_rows,)


def batch_bucket(rows: int, buckets: tuple[int, ...], capacity: int) -> int:
    """The rows a step for ``rows`` live rows covers: the smallest bucket that holds them, never more than the
    slots the cache has (``capacity``, at least ``rows``)."""
    if not 0 < rows <= capacity:
        raise ValueError(f"rows must be within 1..{capacity}, got {rows}")
    return min(next((b for b in buckets if b >= rows), capacity), capacity)


def span_buckets(columns: int, bucket: int) -> tuple[int, ...]:
    """Every span a step can attend in a cache of ``columns`` columns (kv.bucketed_span's values)."""
    return tuple(sorted({bucketed_span(needed, bucket, columns) for needed in range(1, columns + 1, bucket)}
                        | {bucketed_span(columns, bucket, columns)}))
