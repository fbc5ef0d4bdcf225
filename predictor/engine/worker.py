"""The worker thread that owns the model: iteration-level batching over the model's forward and KV cache.

transformers' continuous batching is text-only and drops image inputs (docs/ARCHITECTURE.md), so this loop does
it itself: new requests are prefilled (vision encoder + prompt) in groups the family says can share a forward,
on the prefill thread, and join the running decode batch at the next step; a finished or cancelled row leaves
at once. A failure inside one
request's prefill fails only that request; the worker itself never dies.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import torch

from predictor.engine import metrics
from predictor.engine.detokenizer import IncrementalDetokenizer
from predictor.engine.kv import BatchCache
from predictor.engine.ngram import table_token_ids
from predictor.engine.prefill import Prefilled, Prefiller
from predictor.engine.sampler import RowSampler
from predictor.engine.types import Delta, GenerationRequest, GenerationResult
from predictor.errors import Cancelled, EngineFault, OutOfMemory, RequestTimeout

log = logging.getLogger(__name__)


@dataclass
class _Row:
    request: GenerationRequest
    sampler: RowSampler
    detok: IncrementalDetokenizer
    position: int  # position id of the next token to feed
    generated: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    emitted: int = 0  # characters of detok.text already streamed
    finish_reason: str | None = None


def _need(request: GenerationRequest) -> int:
    """KV-cache positions a request may occupy: its prompt plus its token cap."""
    return request.prepared.prompt_tokens + request.params.max_new_tokens


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


class Worker:
    def __init__(self, family: Any, device: Any, max_batch_size: int, max_batch_tokens: int,
                 max_prefill_batch: int):
        self.family = family
        self.model = family.model
        self.device = device
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.inbox: queue.Queue[GenerationRequest | None] = queue.Queue()
        self.waiting: deque[GenerationRequest] = deque()
        self.rows: list[_Row] = []
        self.batch = BatchCache()
        self.whitelist = table_token_ids(family.tokenizer)
        self.eos = family.eos_token_id
        self.max_context = family.max_context
        pad = family.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos)
        self.max_prefill_batch = max_prefill_batch
        self.prefiller = Prefiller(self.model, device, self.pad_id)
        self.pending: list[tuple[futures.Future[list[Prefilled]], list[GenerationRequest]]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ocr-engine", daemon=True)
        self.steps = 0
        self.largest_prefill = 0  # most requests prefilled in one forward (observability, tests)

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.inbox.put(None)
        self.thread.join(timeout=10)
        self.prefiller.shutdown()

    def submit(self, request: GenerationRequest) -> None:
        self.inbox.put(request)

    # ---- the loop --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._collect(block=not self.rows and not self.waiting and not self.pending)
                self._admit()
                self._merge_prefilled(wait=not self.rows)
                if self.rows:
                    self._step()
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("engine step failed; failing the running batch")
                self._fail_all(lambda: EngineFault("generation failed inside the model"))

    def _collect(self, block: bool) -> None:
        try:
            item = self.inbox.get(timeout=0.5) if block else self.inbox.get_nowait()
        except queue.Empty:
            return
        while item is not None:
            self.waiting.append(item)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
        metrics.QUEUED.set(len(self.waiting))

    def _tokens_in_flight(self) -> int:
        return sum(_need(r.request) for r in self.rows)

    def _admit(self) -> None:
        """Move waiting requests into prefill while the batch has room (rows being prefilled count)."""
        admitted: list[GenerationRequest] = []
        pending = [r for _, group in self.pending for r in group]
        busy = len(self.rows) + len(pending)
        in_flight = self._tokens_in_flight() + sum(_need(r) for r in pending)
        while self.waiting and busy + len(admitted) < self.max_batch_size:
            request = self.waiting[0]
            if self._drop_if_dead(request):
                self.waiting.popleft()
                continue
            if (busy or admitted) and in_flight + _need(request) > self.max_batch_tokens:
                break  # wait for rows to finish; a lone request is always admitted
            in_flight += _need(request)
            admitted.append(self.waiting.popleft())
        groups: dict[Any, list[GenerationRequest]] = {}
        for request in admitted:
            groups.setdefault(request.prepared.group_key, []).append(request)
        for group in groups.values():
            for start in range(0, len(group), self.max_prefill_batch):
                chunk = group[start:start + self.max_prefill_batch]
                self.pending.append((self.prefiller.submit(chunk), chunk))
        metrics.QUEUED.set(len(self.waiting))
        metrics.RUNNING.set(len(self.rows))

    def _drop_if_dead(self, request: GenerationRequest) -> bool:
        if request.cancelled.is_set():
            request.emit(Cancelled("cancelled"))
            return True
        if request.deadline is not None and time.monotonic() > request.deadline:
            request.emit(RequestTimeout("request timed out while queued"))
            return True
        return False

    # ---- prefill -----------------------------------------------------------------------------------------------

    def _merge_prefilled(self, wait: bool) -> None:
        """Join finished prefills to the running batch; with nothing to decode, wait briefly for one."""
        if not self.pending:
            return
        if wait:
            futures.wait([f for f, _ in self.pending], timeout=0.05, return_when=futures.FIRST_COMPLETED)
        ready, running = [], []
        for item in self.pending:  # one done() check per future: it may finish while we look
            (ready if item[0].done() else running).append(item)
        self.pending = running
        for future, group in ready:
            try:
                outcomes = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. the pool shut down
                outcomes = [Prefilled([r], error=exc) for r in group]
            for outcome in outcomes:
                try:
                    self._join(outcome)
                except Exception as exc:  # noqa: BLE001 - fail this group, keep the running batch
                    log.exception("joining a prefilled group failed")
                    for request in outcome.requests:
                        self._fail_request(request, exc, "join")

    @torch.inference_mode()
    def _join(self, outcome: Prefilled) -> None:
        if outcome.error is not None:
            self._fail_request(outcome.requests[0], outcome.error, "prefill")
            return
        assert outcome.logits is not None and outcome.mask is not None
        rows = [_Row(r, RowSampler(r.params, self.eos, self.whitelist, self.device),
                     IncrementalDetokenizer(self.family.tokenizer, frozenset({self.eos})),
                     position=r.prepared.prompt_tokens) for r in outcome.requests]
        tokens = [row.sampler.choose(outcome.logits[i], row.generated) for i, row in enumerate(rows)]
        self.largest_prefill = max(self.largest_prefill, len(rows))
        metrics.PROMPT_TOKENS.inc(sum(r.prepared.prompt_tokens for r in outcome.requests))
        self.batch.add(outcome.cache, outcome.mask)
        first = len(self.rows)
        self.rows.extend(rows)
        done = [first + i for i, (row, token) in enumerate(zip(rows, tokens, strict=True)) if self._accept(row, token)]
        if done:
            self._finish_rows(done)

    # ---- decode ------------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def _step(self) -> None:
        self._drop_cancelled()
        if not self.rows:
            return
        ids = torch.tensor([[r.generated[-1]] for r in self.rows], device=self.device)
        positions = torch.tensor([[r.position] for r in self.rows], device=self.device)
        mask = self.batch.extend_mask()
        metrics.BATCH_SIZE.observe(len(self.rows))
        try:
            out = self.model(input_ids=ids, attention_mask=self.family.decode_mask(mask), position_ids=positions,
                             cache=self.batch.cache, use_cache=True)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the rows of this step are lost
            oom = _is_oom(exc)
            self._fail_all(lambda: OutOfMemory("out of GPU memory; retry later", retry_after=5) if oom
                           else EngineFault("generation failed inside the model"))
            if not _is_oom(exc):
                log.exception("decode step failed")
            return
        self.steps += 1
        logits = out.logits[:, -1].float()
        hints = logits.argmax(dim=-1).tolist()  # one device sync for the whole batch
        done = []
        for i, row in enumerate(self.rows):
            row.position += 1
            if self._accept(row, row.sampler.choose(logits[i], row.generated, hints[i])):
                done.append(i)
        if done:
            self._finish_rows(done)

    def _accept(self, row: _Row, token: int) -> bool:
        """Record one sampled token; True when the row is finished."""
        now = time.monotonic()
        if row.first_token_at is None:
            row.first_token_at = now
            metrics.TTFT.observe(now - row.request.created)
        params = row.request.params
        if token == self.eos and not params.ignore_eos:
            row.finish_reason = "stop"
            return True
        row.generated.append(token)
        metrics.GENERATED_TOKENS.inc()
        row.detok.add(token)
        if params.stop and self._hit_stop(row):
            return True
        if len(row.generated) >= params.max_new_tokens or row.position + 1 >= self.max_context:
            row.finish_reason = "length"
            return True
        self._emit_pending(row)
        return False

    @staticmethod
    def _hit_stop(row: _Row) -> bool:
        text = row.detok.text
        # only the tail can hold a stop string that was not complete at the previous step
        tail_start = max(0, len(text) - max(len(s) for s in row.request.params.stop) - 16)
        hits = [i for s in row.request.params.stop if (i := text.find(s, tail_start)) >= 0]
        if not hits:
            return False
        row.detok.text = text[:min(hits)]
        row.finish_reason = "stop"
        return True

    @staticmethod
    def _emit_pending(row: _Row, final: bool = False) -> None:
        """Stream what is safe to show: with stop strings, hold back a tail that could start one."""
        if not row.request.stream:
            return
        text = row.detok.text
        limit = len(text)
        if not final and row.request.params.stop:
            limit -= max(len(s) for s in row.request.params.stop) - 1
        if limit > row.emitted:
            row.request.emit(Delta(text[row.emitted:limit]))
            row.emitted = limit

    def _drop_cancelled(self) -> None:
        gone = [i for i, r in enumerate(self.rows) if r.request.cancelled.is_set()
                or (r.request.deadline is not None and time.monotonic() > r.request.deadline)]
        for i in gone:
            request = self.rows[i].request
            cancelled = request.cancelled.is_set()
            request.emit(Cancelled("cancelled") if cancelled else RequestTimeout("request timed out"))
            metrics.FINISHED.labels(reason="cancelled" if cancelled else "timeout").inc()
        if gone:
            self._keep([i for i in range(len(self.rows)) if i not in set(gone)])

    def _finish_rows(self, done: list[int]) -> None:
        now = time.monotonic()
        for i in done:
            row = self.rows[i]
            request = row.request
            if row.finish_reason != "stop" or not request.params.stop:
                row.detok.flush()
            self._emit_pending(row, final=True)
            n = len(row.generated)
            if n > 1 and row.first_token_at is not None:
                metrics.TPOT.observe((now - row.first_token_at) / (n - 1))
            metrics.E2E.observe(now - request.created)
            metrics.FINISHED.labels(reason=row.finish_reason or "stop").inc()
            request.emit(GenerationResult(
                text=row.detok.text, token_ids=list(row.generated), finish_reason=row.finish_reason or "stop",
                prompt_tokens=request.prepared.prompt_tokens, completion_tokens=n,
                image_tokens=request.prepared.image_tokens,
                first_token_at=row.first_token_at,
            ))
        self._keep([i for i in range(len(self.rows)) if i not in set(done)])

    def _keep(self, indices: list[int]) -> None:
        self.rows = [self.rows[i] for i in indices]
        self.batch.keep(indices)
        metrics.RUNNING.set(len(self.rows))

    # ---- failures ------------------------------------------------------------------------------------------------

    def _fail_request(self, request: GenerationRequest, exc: BaseException, stage: str) -> None:
        if _is_oom(exc):
            self._free_memory()
            request.emit(OutOfMemory("out of GPU memory; retry later", retry_after=5))
        else:
            log.warning("request %s failed in %s: %s: %s", request.request_id, stage, type(exc).__name__, exc)
            request.emit(EngineFault("the model failed on this input"))
        metrics.FINISHED.labels(reason="error").inc()

    def _fail_all(self, error: Callable[[], Exception]) -> None:
        """Fail every running row, each with its own exception (one instance raised in many tasks would share
        and keep growing its traceback)."""
        for row in self.rows:
            row.request.emit(error())
            metrics.FINISHED.labels(reason="error").inc()
        self.rows = []
        self.batch.clear()
        self._free_memory()
        metrics.RUNNING.set(0)

    @staticmethod
    def _free_memory() -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
