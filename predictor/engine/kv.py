"""The running batch's KV cache: rows of different lengths, left-padded to a common length.

New rows are prefilled (alone or together) and then merged in (left-padded); a finished row is dropped by index; padding
that every remaining row shares is trimmed so the cache never grows past the longest live row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache


def _pad_left(t: torch.Tensor, n: int) -> torch.Tensor:
    return F.pad(t, (0, 0, n, 0)) if n else t


class BatchCache:
    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [rows, length] 1 = real token, 0 = left padding

    @property
    def rows(self) -> int:
        return 0 if self.mask is None else int(self.mask.shape[0])

    @property
    def length(self) -> int:
        return 0 if self.mask is None else int(self.mask.shape[1])

    def add(self, new_cache: DynamicCache, new_mask: torch.Tensor) -> None:
        """Append prefilled rows (their own left-padded cache and mask) after the running ones."""
        if self.cache is None:
            self.cache, self.mask = new_cache, new_mask
            return
        assert self.mask is not None
        length = int(new_mask.shape[1])
        if length > self.length:
            grow = length - self.length
            for layer in self.cache.layers:
                layer.keys, layer.values = _pad_left(layer.keys, grow), _pad_left(layer.values, grow)
            self.mask = F.pad(self.mask, (grow, 0))
        pad = self.length - length
        for layer, new in zip(self.cache.layers, new_cache.layers, strict=True):
            layer.keys = torch.cat([layer.keys, _pad_left(new.keys, pad)])
            layer.values = torch.cat([layer.values, _pad_left(new.values, pad)])
        self.mask = torch.cat([self.mask, F.pad(new_mask, (pad, 0))])

    def extend_mask(self) -> torch.Tensor:
        """Mask for the next decode step: one more real position per row."""
        assert self.mask is not None
        self.mask = F.pad(self.mask, (0, 1), value=1)
        return self.mask

    def keep(self, indices: list[int]) -> None:
        """Keep only these rows (in this order); trim shared left padding."""
        if not indices:
            self.cache = self.mask = None
            return
        assert self.cache is not None and self.mask is not None
        if indices != list(range(self.rows)):
            idx = torch.tensor(indices, dtype=torch.long, device=self.mask.device)
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[idx], layer.values[idx]
            self.mask = self.mask[idx]
        shared = int((self.mask.cumsum(dim=1) == 0).sum(dim=1).min())
        if shared:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, shared:], layer.values[:, :, shared:]
            self.mask = self.mask[:, shared:]

    def clear(self) -> None:
        self.cache = self.mask = None
