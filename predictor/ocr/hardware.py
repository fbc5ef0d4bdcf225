"""Device, dtype and kernel choices, made once at start-up and logged.

No Triton and no torch.compile on the serving path (docs/ARCHITECTURE.md explains why): attention is sdpa or
eager, MoE experts grouped_mm / batched_mm / eager, picked by what actually runs on this device. Nothing is
refused merely for being sm_121 (GB10).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from predictor.config import Settings

log = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class Hardware:
    device: str
    dtype: Any
    attn_implementation: str
    experts_implementation: str | None
    max_prefill_batch: int
    prefill_workers: int
    description: str


def _grouped_mm_works(device: str, dtype: Any) -> bool:
    """Run torch's grouped GEMM once on tiny tensors; some arch/toolkit combinations have no kernel."""
    grouped_mm = getattr(torch.nn.functional, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)
    if grouped_mm is None:
        return False
    try:
        a = torch.randn(32, 64, device=device, dtype=dtype)
        b = torch.randn(2, 64, 32, device=device, dtype=dtype)
        offsets = torch.tensor([16, 32], device=device, dtype=torch.int32)
        grouped_mm(a, b, offs=offsets)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means "do not use it"
        log.warning("grouped_mm unavailable on %s (%s); using batched_mm experts", device, exc)
        return False


def choose_hardware(settings: Settings) -> Hardware:
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    on_cuda = device.startswith("cuda")  # "cuda" or "cuda:N"
    if settings.dtype == "auto":
        dtype = torch.bfloat16 if on_cuda else torch.float32
    else:
        dtype = _DTYPES[settings.dtype]
    attn = "sdpa" if settings.attn_implementation == "auto" else settings.attn_implementation
    experts: str | None = None if settings.experts_implementation == "auto" else settings.experts_implementation
    if experts is None and on_cuda:
        experts = "grouped_mm" if _grouped_mm_works(device, dtype) else "batched_mm"
    if on_cuda:
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        major, minor = torch.cuda.get_device_capability(index)
        what = f"cuda:{index} {torch.cuda.get_device_name(index)} (sm_{major}{minor})"
    else:
        what = f"cpu ({torch.get_num_threads()} threads)"
    # On CPU a batched vision encoder measured no faster per image (and slower at 8): prefill one at a time.
    prefill = settings.max_prefill_batch or (4 if on_cuda else 1)
    # On CPU the decode loop is mostly Python and the vision encoder mostly kernels (the GIL is released inside
    # them), so two prefills beside the decode loop keep two cores busy: measured c=8 over c=1 2.5x -> 2.9x at
    # 512 tokens (docs/PERFORMANCE.md). On CUDA one prefill stream; batching (max_prefill_batch) does the rest.
    workers = settings.prefill_workers or (1 if on_cuda else 2)
    description = (f"device={what} dtype={str(dtype).removeprefix('torch.')} attention={attn} "
                   f"experts={experts or 'library default'} prefill_batch={prefill} prefill_workers={workers} "
                   f"torch={torch.__version__} compile=disabled")
    return Hardware(device, dtype, attn, experts, prefill, workers, description)


def disable_compile() -> None:
    """Make any torch.compile on our path a no-op, so nothing reaches Inductor/Triton (not built for sm_121)."""
    import torch._dynamo

    torch._dynamo.config.disable = True
