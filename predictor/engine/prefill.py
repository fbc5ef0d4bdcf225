"""Collating several prepared prompts into one left-padded prefill batch.

Prefilling the requests that arrived together in one forward pass runs the vision encoder over all their views at
once, instead of stalling the running decode batch once per request. Only prompts whose family-given
``group_key`` is equal are grouped (the family knows which of its inputs can be concatenated).
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from predictor.engine.config import EngineConfig
from predictor.engine.types import GenerationRequest
from predictor.families.base import PreparedPrompt

_TOKEN_KEYS = ("input_ids", "attention_mask")

# Prefills run side by side only while their image tensors together stay within this many floats: a one-view page
# (a 1024x1024 global view: 3.1 M values) may run beside a page with tiles (a letter page: 10.5 M in v1 gundam,
# 13.8 M in v2) or beside other one-view pages; two pages with tiles never pair up. A vision-encoder pass's
# activations grow with its views (measured on CPU, tiny v2: +260 MB for one view, +500 MB for a letter page), so a
# burst of large pages keeps one tiled pass's peak, plus at most one view. Letting the one-view page in is what keeps
# a single page sent during a long PDF from waiting for the PDF page being encoded (issue 24: head-of-line,
# bench/bench_fairness.py).
PARALLEL_IMAGE_VALUES = 17_500_000


def image_values(prepared: PreparedPrompt) -> int:
    return sum(v.numel() for v in prepared.inputs.values() if isinstance(v, torch.Tensor) and v.is_floating_point())


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


@dataclass
class Prefilled:
    """The outcome of prefilling a group: its own left-padded cache and last-position logits, or an error."""

    requests: list[GenerationRequest]
    cache: Any = None
    mask: torch.Tensor | None = None
    logits: torch.Tensor | None = None  # [rows, vocab] float32
    error: BaseException | None = None  # only ever set for a group of one
    ready: Any = None  # CUDA: an event recorded on the prefill stream after the last kernel of this group

    def hand_over(self) -> None:
        """Make the decode stream wait for this prefill and keep its tensors alive until the decode stream used them.

        Without ``record_stream`` the caching allocator could give their memory to the next prefill (on its own
        stream) while copies into the slots are still queued on the decode stream.
        """
        if self.ready is None:
            return
        stream = torch.cuda.current_stream(self.logits.device)  # the decode stream of the prefill's own GPU
        stream.wait_event(self.ready)
        tensors = [self.mask, self.logits] + [t for layer in self.cache.layers for t in (layer.keys, layer.values)]
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor) and tensor.is_cuda:
                tensor.record_stream(stream)


def decode_stream(device: Any) -> Any:
    """The decode loop's CUDA stream, at a higher priority than the prefill streams (created at the default, lowest
    priority): when a vision-encoder pass and a decode step are both queued, the GPU schedules the step's kernels
    first, so a long prefill delays running rows less. None on CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    stream = torch.cuda.Stream(device=device, priority=-1)  # lower is higher; clamped to the device's range
    stream.wait_stream(torch.cuda.default_stream(device))  # weights and probes were queued on the default stream
    return stream


class Prefiller:
    """Runs prefills on their own threads (``workers`` at once), so the running batch keeps decoding while new
    pages are encoded.

    On CPU a prefill thread uses another core (torch releases the GIL inside kernels, and a vision-encoder pass is
    mostly kernels while a decode step is mostly Python); with two, a burst of pages is encoded two at a time.
    On CUDA each prefill thread queues its kernels on its own stream: on one shared stream a decode step queued
    behind a vision-encoder pass would wait for all of it; on separate streams the GPU interleaves them, and the
    decode thread only waits (through an event) for the prefill it is about to join, never for one still running.
    """

    def __init__(self, model: Any, device: Any, *, pad_id: int, config: EngineConfig):
        self.model = model
        self.device = device
        self.pad_id = pad_id
        self.workers = max(1, config.prefill_workers)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ocr-prefill")
        self._local = threading.local()  # each prefill thread's own CUDA stream
        self._gate = threading.Condition()
        self._in_flight = 0  # image floats of the prefills running now
        self.most_at_once = 0  # most prefills that ran side by side (observability, tests)
        self._running = 0

    @property
    def stream(self) -> Any:
        """The calling prefill thread's CUDA stream (None on CPU), created on its first prefill."""
        if not str(self.device).startswith("cuda"):
            return None
        if getattr(self._local, "stream", None) is None:
            self._local.stream = torch.cuda.Stream(device=self.device)
        return self._local.stream

    def submit(self, requests: list[GenerationRequest]) -> Future[list[Prefilled]]:
        return self.pool.submit(self._gated, requests)

    def _gated(self, requests: list[GenerationRequest]) -> list[Prefilled]:
        """Run a prefill once it fits beside the running ones (``PARALLEL_IMAGE_VALUES``); a lone one always fits."""
        size = sum(image_values(r.prepared) for r in requests)
        with self._gate:
            self._gate.wait_for(lambda: self._running == 0 or self._in_flight + size <= PARALLEL_IMAGE_VALUES)
            self._in_flight += size
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        try:
            return self._run(requests)
        finally:
            with self._gate:
                self._in_flight -= size
                self._running -= 1
                self._gate.notify_all()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, requests: list[GenerationRequest]) -> list[Prefilled]:
        try:
            return [self._forward(requests)]
        except Exception as exc:  # noqa: BLE001 - isolate the bad request: retry each alone
            if len(requests) == 1:
                return [Prefilled(requests, error=exc)]
            return [outcome for request in requests for outcome in self._run([request])]

    @torch.inference_mode()
    def _forward(self, requests: list[GenerationRequest]) -> Prefilled:
        from transformers import DynamicCache

        stream = self.stream
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            inputs = self._to_device(collate([r.prepared for r in requests], self.pad_id))
            cache = DynamicCache(config=self.model.config)
            out = self.model(**inputs, cache=cache, use_cache=True, logits_to_keep=1)
            done = Prefilled(requests, cache, inputs["attention_mask"], out.logits[:, -1].float())
            if stream is not None:
                done.ready = torch.cuda.Event()
                done.ready.record(stream)  # the pixels may go: kernels queued on this stream keep their memory
        for request in requests:
            request.prepared.release()
        return done

    def _to_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        dtype = self.model.dtype
        moved = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, dtype=dtype if value.is_floating_point() else None)
            moved[key] = value
        return moved
