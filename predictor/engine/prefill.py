"""Collating several prepared prompts into one left-padded prefill batch.

Prefilling the requests that arrived together in one forward pass runs the vision encoder over all their views at
once, instead of stalling the running decode batch once per request. Only prompts whose global views have the
same shape and the same tiling kind are grouped (different v1 modes render different view sizes).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch
import torch.nn.functional as F

from predictor.families.base import PreparedPrompt

_TOKEN_KEYS = ("input_ids", "attention_mask")


def group_key(prepared: PreparedPrompt) -> Hashable:
    pixels = prepared.inputs.get("pixel_values")
    shape = tuple(pixels.shape[1:]) if isinstance(pixels, torch.Tensor) else None
    return shape, "pixel_values_local" in prepared.inputs


def collate(batch: list[PreparedPrompt], pad_id: int) -> dict[str, Any]:
    """One forward's kwargs: token tensors left-padded, image tensors concatenated, list fields joined.

    Position ids count real tokens only, so every row sees the positions it would see alone.
    """
    if len(batch) == 1:
        inputs = dict(batch[0].inputs)
    else:
        length = max(p.prompt_tokens for p in batch)
        inputs = {}
        for key in batch[0].inputs:
            values = [p.inputs[key] for p in batch if key in p.inputs]
            if key in _TOKEN_KEYS:
                fill = pad_id if key == "input_ids" else 0
                inputs[key] = torch.cat([F.pad(v, (length - v.shape[1], 0), value=fill) for v in values])
            elif isinstance(values[0], torch.Tensor):
                inputs[key] = torch.cat(values)
            elif isinstance(values[0], list):
                inputs[key] = [item for value in values for item in value]
            else:
                inputs[key] = values[0]
    mask = inputs["attention_mask"]
    inputs["position_ids"] = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return inputs
