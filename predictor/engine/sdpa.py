"""Which scaled-dot-product-attention backend each phase uses, chosen on purpose and logged at start-up.

From torch 2.11 (cuDNN above 9.15) SDPA prefers cuDNN attention on compute capability 9 and 10, and the decode
call (additive mask, strided K/V views of the slot cache) passes its checks. cuDNN keys its execution plans on
exact shapes, per thread, never evicting: a shape it has not seen costs a plan build (tens to hundreds of ms
reported upstream) and host memory that stays. Decode spans are bucketed (engine/kv.py) so shapes repeat, but
prefill shapes follow each page's image-token count and rarely repeat.

``--sdpa_cudnn``: ``auto`` = cuDNN attention off (decode then runs flash / memory-efficient attention, prefill
too: torch's backend switches are process-wide, not per thread, so one phase cannot differ from the other while
prefill threads run beside the decode loop); ``on`` = allowed (torch's own priority order); ``off`` = off.
The start-up log names the backend torch picks for a decode-shaped and a prefill-shaped call
(``torch._fused_sdp_choice``), not the setting alone.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

CHOICES = ("auto", "on", "off")


def apply(setting: str, device: str, dtype: Any) -> str:
    """Set torch's cuDNN-attention switch for ``setting``; returns the one-line description to log."""
    if setting not in CHOICES:
        raise ValueError(f"sdpa_cudnn must be one of {', '.join(CHOICES)}")
    if not str(device).startswith("cuda"):
        return f"sdpa_cudnn={setting} (no effect on {device}: CPU attention kernels)"
    torch.backends.cuda.enable_cudnn_sdp(setting == "on")
    phases = ", ".join(f"{phase}={name}" for phase, name in chosen_backends(device, dtype).items())
    return f"sdpa_cudnn={setting}: {phases}"


def chosen_backends(device: str, dtype: Any, span: int = 2048, rows: int = 8) -> dict[str, str]:
    """The backend torch picks now for engine-shaped calls: decode (one query, additive mask, strided K/V views
    of a wider buffer) and prefill (causal text, no mask)."""
    heads, head_dim = 10, 128
    buffer = torch.zeros(rows, heads, span + 256, head_dim, device=device, dtype=dtype)
    keys = values = buffer[:, :, :span]
    query = torch.zeros(rows, heads, 1, head_dim, device=device, dtype=dtype)
    mask = torch.zeros(rows, 1, 1, span, device=device, dtype=dtype)
    prefill = torch.zeros(1, heads, 1024, head_dim, device=device, dtype=dtype)
    return {"decode": backend_name(query, keys, values, mask),
            "prefill": backend_name(prefill, prefill, prefill, None, is_causal=True)}


def backend_name(query: Any, key: Any, value: Any, mask: Any, is_causal: bool = False) -> str:
    """Name of the backend ``scaled_dot_product_attention`` would run for these tensors (``torch._fused_sdp_choice``,
    the op SDPA itself consults), or ``unknown`` where torch does not expose it."""
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None:
        return "unknown"
    try:
        index = int(choose(query, key, value, mask, 0.0, is_causal))
    except (RuntimeError, TypeError) as exc:
        return f"unknown ({exc})"
    try:
        return torch.nn.attention.SDPBackend(index).name.lower()
    except ValueError:
        return f"backend {index}"
