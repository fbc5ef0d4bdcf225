"""What the engine's failures mean for the process: retry, fail one request, or restart the pod.

Out of memory is recoverable (free the cache, fail or evict a few rows, carry on). A sticky device error (an illegal
address, a device-side assert, a launch failure, an Xid) poisons the CUDA context: every later kernel fails, so the
engine stops taking work and reports itself unhealthy, and Kubernetes restarts the pod. A stalled engine (its
loop has not ticked for ``stall_after`` seconds while work is waiting) is reported the same way.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch

_OOM_MARKERS = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed",
                "cuda_error_out_of_memory", "hipblas_status_alloc_failed")
# Errors after which the CUDA context is unusable (https://docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__TYPES.html
# lists them as "sticky": the process must be restarted).
_FATAL_MARKERS = ("illegal memory access", "illegal address", "device-side assert", "unspecified launch failure",
                  "misaligned address", "illegal instruction", "uncorrectable ecc", "hardware stack error",
                  "cuda error: launch timed out", "cudaerrorlaunchfailure", "cublas_status_execution_failed",
                  "cublas_status_internal_error", "xid", "device not ready", "gpu has fallen off the bus",
                  "cuda driver error", "context is destroyed")


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or any(m in str(exc).lower() for m in _OOM_MARKERS)


def is_fatal(exc: BaseException) -> bool:
    """True for a device error after which nothing on this device can be trusted."""
    if is_oom(exc):
        return False
    text = str(exc).lower()
    if any(m in text for m in _FATAL_MARKERS):
        return True
    accelerator_error = getattr(torch, "AcceleratorError", None)
    return accelerator_error is not None and isinstance(exc, accelerator_error)


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str = ""


class Heartbeat:
    """The worker ticks once per loop iteration; ``check`` turns red on a fatal error or a stall."""

    def __init__(self, stall_after: float):
        self.stall_after = stall_after
        self.last = time.monotonic()
        self.fatal: str | None = None
        self._lock = threading.Lock()

    def tick(self) -> None:
        self.last = time.monotonic()

    def fail(self, reason: str) -> None:
        with self._lock:
            self.fatal = self.fatal or reason

    def check(self, busy: bool) -> Health:
        if self.fatal is not None:
            return Health(False, f"device error: {self.fatal}")
        stalled = time.monotonic() - self.last
        if busy and stalled > self.stall_after:
            return Health(False, f"engine stalled: no step for {stalled:.0f} s with work waiting")
        return Health(True)
