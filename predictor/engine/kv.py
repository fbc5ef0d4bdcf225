"""The running batch's KV cache: preallocated slots written in place.

Each decoder layer owns two buffers ``[slots, kv_heads, columns, head_dim]`` (keys and values). A running row
owns one slot; its prefill states are copied into columns ``0..P`` once when it joins, and each decode step writes
one column per row in place, at the row's own next column (rows are ragged, a per-slot mask says which columns
are real). The model attends over ``buffer[:rows, :, :span]`` (a view: nothing is copied), where ``span`` is the
longest row's length. Rows stay packed in slots ``0..rows-1``: a finished row's slot is filled by moving the last
row into it (one row's states, never the batch). Decode steps therefore allocate no KV memory; the buffers only
grow (rarely, when a longer or wider batch is admitted than any before), and growth builds the new buffers
completely before swapping them in, so a failure (out of memory) leaves the running batch intact.

``SlotCache`` is a transformers ``Cache`` whose layers implement ``update``, so the models' forward passes run
unchanged. The same fixed buffers are what CUDA graphs would need later, without ``torch.compile``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

COLUMN_CHUNK = 256  # columns grow in chunks so a slightly longer row does not reallocate every time
# On CUDA the attended span is rounded up to a multiple of this, so a step's attention shapes repeat for 256 steps:
# cuDNN attention keys its plan cache on exact shapes (a span growing by one each step misses it every step) and
# CUDA graphs are captured per shape. The extra columns are hidden by the mask (each adds an exact 0 to softmax).
SPAN_BUCKET = 256


def span_bucket_for(device: Any) -> int:
    """The span bucket of a cache on ``device``: ``SPAN_BUCKET`` on CUDA, 1 elsewhere. On CPU nothing is keyed on
    shapes, so the padded columns would only be attention work for every row (tiny v2, 8 rows, forward time over a
    512- or 2,048-token run: 4-6 % more with buckets of 256)."""
    return SPAN_BUCKET if torch.device(device).type == "cuda" else 1


class SlotLayer(CacheLayerMixin):
    """One decoder layer's slots. ``update`` is only ever called by decode steps (one query token per row)."""

    is_sliding = False

    def __init__(self, owner: SlotCache, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.owner = owner
        self.keys, self.values = keys, values
        self.device = keys.device
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise RuntimeError("slot layers are allocated up front")  # pragma: no cover

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.owner
        rows, cols = o.step_index
        assert self.keys is not None and self.values is not None
        # one column per row, each at its own position: an in-place scatter, no concatenation
        self.keys[rows, :, cols] = key_states[:, :, -1]
        self.values[rows, :, cols] = value_states[:, :, -1]
        return self.keys[:o.width, :, :o.span], self.values[:o.width, :, :o.span]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.owner.span, 0

    def get_seq_length(self) -> int:
        return self.owner.span

    def get_max_length(self) -> int:
        return self.owner.columns


class SlotCache(Cache):
    """Slots for up to ``slot_capacity`` rows of up to ``columns`` positions each, plus per-row device state.

    Per slot: the additive attention mask of its columns (0 = real, dtype-min = padding or unused; additive because
    both eager and SDPA take it as is, where a boolean mask costs SDPA a conversion per layer per step), the column
    its next token is written to, the position id of that token (real tokens only, so a row sees the positions it
    would see alone) and the id of that token.
    """

    span_bucket: int | None = None  # None: decided by the device (``span_bucket_for``); tests may force one

    def __init__(self, like: Any, slots: int, columns: int):
        """``like``: a prefill cache whose layers show the dtype, device, heads and head sizes to allocate."""
        self.rows = 0
        self.width = 0  # rows the step's forward covers: ``rows``, or more with hidden padding rows (forward.py)
        self.span = 0
        self.lengths: list[int] = []  # host mirror of each live row's next write column
        self.stale: set[int] = set()  # free slots still holding a departed row's write column, position and token
        self.step_index: tuple[torch.Tensor, torch.Tensor] = (torch.empty(0), torch.empty(0))
        self._layout = [(layer.keys.shape[1], layer.keys.shape[3], layer.values.shape[3]) for layer in like.layers]
        first = like.layers[0].keys
        self.dtype, self.device = first.dtype, first.device
        self.hidden = torch.finfo(first.dtype).min  # not -inf: a fully hidden row must not turn into NaN
        self.span_bucket = self.span_bucket if self.span_bucket is not None else span_bucket_for(self.device)
        layers, state = self._allocate(slots, columns)
        super().__init__(layers=[SlotLayer(self, k, v) for k, v in layers])
        self._commit(layers, state)

    # ---- capacity ---------------------------------------------------------------------------------------------

    @property
    def slot_capacity(self) -> int:
        return int(self.mask.shape[0])

    @property
    def columns(self) -> int:
        return int(self.mask.shape[1])

    @property
    def positions_held(self) -> int:
        """Positions the buffers hold (slots x columns): what admission budgets against."""
        return self.slot_capacity * self.columns

    def _allocate(self, slots: int, columns: int) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], dict]:
        layers = [(torch.zeros(slots, h, columns, dk, dtype=self.dtype, device=self.device),
                   torch.zeros(slots, h, columns, dv, dtype=self.dtype, device=self.device))
                  for h, dk, dv in self._layout]
        state = {"mask": torch.full((slots, columns), self.hidden, dtype=self.dtype, device=self.device),
                 "write": torch.zeros(slots, dtype=torch.long, device=self.device),
                 "position": torch.zeros(slots, dtype=torch.long, device=self.device),
                 "next_ids": torch.zeros(slots, dtype=torch.long, device=self.device),
                 "arange": torch.arange(slots, device=self.device)}
        return layers, state

    def _commit(self, layers: list[tuple[torch.Tensor, torch.Tensor]], state: dict) -> None:
        for layer, (k, v) in zip(self.layers, layers, strict=True):
            layer.keys, layer.values = k, v
        self.mask, self.write, self.position = state["mask"], state["write"], state["position"]
        self.next_ids, self.arange = state["next_ids"], state["arange"]

    def ensure(self, slots: int, columns: int, budget: int) -> bool:
        """Make room for ``slots`` rows of up to ``columns`` positions (the most any live or joining row will
        reach); True when the buffers were reallocated.

        Columns grow geometrically (at least double, in whole chunks) while that stays within ``budget`` positions,
        so a stream of ever longer joins reallocates and copies the running batch a logarithmic number of times, not
        at every join; slots never shrink below the current capacity unless the budget forces it, and then to as
        many as the budget holds (at least ``slots``). Admission keeps ``slots x columns`` within the budget. The
        new buffers are filled before they replace the old ones: if allocating fails, nothing changed.
        """
        if slots <= self.slot_capacity and columns <= self.columns:
            return False
        new_slots, new_cols = self._grown_shape(slots, columns, budget)
        layers, state = self._allocate(new_slots, new_cols)
        n, used = self.rows, min(self.columns, new_cols)
        if n:
            for layer, (k, v) in zip(self.layers, layers, strict=True):
                k[:n, :, :used].copy_(layer.keys[:n, :, :used])
                v[:n, :, :used].copy_(layer.values[:n, :, :used])
            state["mask"][:n, :used].copy_(self.mask[:n, :used])
            for key in ("write", "position", "next_ids"):
                state[key][:n].copy_(getattr(self, key)[:n])
        self._commit(layers, state)
        self.stale = set()  # the new buffers' free slots are zeros
        return True

    def _grown_shape(self, slots: int, columns: int, budget: int) -> tuple[int, int]:
        rounded = -(-columns // COLUMN_CHUNK) * COLUMN_CHUNK
        new_slots = max(slots, self.slot_capacity)
        new_cols = max(rounded, 2 * self.columns) if columns > self.columns else self.columns
        if new_slots * new_cols > budget:  # keep the slots, grow the columns less
            new_cols = max(rounded, budget // new_slots // COLUMN_CHUNK * COLUMN_CHUNK)
        if new_slots * new_cols > budget:  # fewer slots: as many as the budget holds at the needed columns
            new_cols = rounded if slots * rounded <= budget else columns
            new_slots = max(slots, min(new_slots, budget // new_cols))
        return new_slots, new_cols

    # ---- rows joining and leaving ------------------------------------------------------------------------------

    def join(self, prefilled: Any, mask: torch.Tensor, positions: list[int], first_ids: torch.Tensor) -> None:
        """Copy a prefilled group (its own left-padded cache and 2-D mask) into the next free slots."""
        g, length = int(mask.shape[0]), int(mask.shape[1])
        start, stop = self.rows, self.rows + g
        assert stop <= self.slot_capacity and length < self.columns
        for layer, new in zip(self.layers, prefilled.layers, strict=True):
            layer.keys[start:stop, :, :length].copy_(new.keys)
            layer.values[start:stop, :, :length].copy_(new.values)
        self.mask[start:stop].fill_(self.hidden)
        self.mask[start:stop, :length].masked_fill_(mask.bool(), 0.0)
        self.write[start:stop] = length
        self.position[start:stop].copy_(torch.tensor(positions, dtype=torch.long), non_blocking=True)
        self.next_ids[start:stop].copy_(first_ids)
        self.lengths.extend([length] * g)
        self.stale.difference_update(range(start, stop))
        self.rows = stop

    def remove(self, gone: list[int]) -> list[int]:
        """Free these rows' slots by moving the last rows into them; returns the old index of each kept row."""
        order = list(range(self.rows))
        for hole in sorted(set(gone), reverse=True):
            last = len(order) - 1
            if hole != last:
                self._move(last, hole)
                order[hole] = order[last]
            order.pop()
            self.lengths.pop()
        self.stale.update(range(len(order), self.rows))
        self.rows = len(order)
        return order

    def _reset_stale(self, start: int, stop: int) -> None:
        """Put the free slots ``start..stop-1`` a padded step runs (forward.py) in the state a padding row may run
        from, where a row that left kept its own: the row then writes column 0 (which a joining row overwrites) at
        position 0 with token 0, never a stale column, nor a position past the model's tables."""
        stale = [slot for slot in self.stale if start <= slot < stop]
        if stale:
            low, high = min(stale), max(stale) + 1
            for t in (self.write, self.position, self.next_ids):
                t[low:high].zero_()
            self.stale.difference_update(range(low, high))

    def _move(self, src: int, dst: int) -> None:
        used = self.lengths[src]
        for layer in self.layers:
            layer.keys[dst, :, :used].copy_(layer.keys[src, :, :used])
            layer.values[dst, :, :used].copy_(layer.values[src, :, :used])
        self.mask[dst].copy_(self.mask[src])
        for t in (self.write, self.position, self.next_ids):
            t[dst] = t[src]
        self.lengths[dst] = used

    def scrub(self, slot: int) -> None:
        """Zero a slot's states: a row that produced NaN may have left some, and masked columns still reach
        attention as 0 x value (NaN x 0 is NaN)."""
        for layer in self.layers:
            layer.keys[slot].zero_()
            layer.values[slot].zero_()

    def clear(self) -> None:
        self.stale.update(range(self.rows))
        self.rows = 0
        self.lengths = []

    # ---- one decode step ---------------------------------------------------------------------------------------

    def begin_step(self, width: int | None = None) -> torch.Tensor:
        """Mark each row's new column visible; return the ``[width, 1, 1, span]`` additive mask view for the step.

        ``width`` (default ``rows``): the rows the forward covers; slots ``rows..width-1`` are free slots run as
        hidden padding rows (their mask is left as it is, their outputs are discarded)."""
        n = self.rows
        span = bucketed_span(max(self.lengths) + 1, self.span_bucket, self.columns)
        width = n if width is None else width
        if width > n:
            self._reset_stale(n, width)
        mask = self.frame(width, span)
        rows, cols = self.step_index if width == n else (self.arange[:n], self.write[:n])
        self.mask[rows, cols] = 0.0
        return mask

    def frame(self, width: int, span: int) -> torch.Tensor:
        """Set the forward's shape (``width`` slots x ``span`` columns) and its write index; the mask view to pass.
        Every tensor the forward reads is a view of the persistent buffers, so a captured CUDA graph (graphs.py)
        replays on their current values."""
        assert width <= self.slot_capacity and span <= self.columns
        self.width, self.span = width, span
        self.step_index = (self.arange[:width], self.write[:width])
        return self.mask[:width, None, None, :span]

    def end_step(self) -> None:
        n = self.rows
        self.write[:n] += 1
        self.position[:n] += 1
        self.lengths = [x + 1 for x in self.lengths]

    def storage(self) -> list[int]:
        """Data pointers of every buffer (tests: decode steps, joins and leaves keep them)."""
        ptrs = [t.data_ptr() for layer in self.layers for t in (layer.keys, layer.values)]
        return ptrs + [self.mask.data_ptr(), self.write.data_ptr(), self.position.data_ptr()]


def bucketed_span(needed: int, bucket: int, columns: int) -> int:
    """The attended span for a step whose longest row needs ``needed`` columns: rounded up to ``bucket``, never past
    the buffers (whose column count is itself a multiple of the chunk unless the budget cut it)."""
    return min(-(-needed // bucket) * bucket, columns)
