"""The engine's knobs, built once by loading (``predictor/ocr/runtime.py``) and passed by name to every part."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    max_batch_size: int = 8  # rows decoded together in one step
    max_batch_tokens: int = 131072  # KV-cache budget in positions: rows x the longest row's prompt + cap
    max_queue: int = 64  # requests admitted beyond the running batch (more get 429)
    request_timeout: float = 600.0
    max_prefill_batch: int = 1  # requests prefilled in one forward
    prefill_workers: int = 1  # prefills running at once beside the decode loop
    stall_after: float = 120.0  # seconds without a loop tick, with work waiting, before health turns red
    cuda_graphs: str = "off"  # auto | on | off: decode CUDA graphs (engine/graph_setup.py); the server: auto
    padded_decode: bool = False  # eager decode padded to batch buckets, as graphs replay it (tests; CPU)

    @property
    def capacity(self) -> int:
        """Requests the engine holds at most: the running batch plus the queue."""
        return self.max_batch_size + self.max_queue
