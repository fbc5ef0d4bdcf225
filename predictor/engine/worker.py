"""The worker thread that owns the model: iteration-level batching over the model's forward and a slot KV cache.

transformers' continuous batching is text-only and drops image inputs (docs/ARCHITECTURE.md), so this loop does
it itself: new requests are prefilled (vision encoder + prompt) in groups the family says can share a forward, on
the prefill thread (and on CUDA its own stream), and join the running decode batch at the next step by taking a
cache slot; a finished or cancelled row leaves at once. A decode step queues the
forward pass and the batch's token choice, then reads the chosen ids back in one device-to-host transfer.
A failure inside one request's prefill or sampling fails only that request; the worker itself never dies.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from concurrent import futures
from typing import Any

import torch

from predictor.engine import graph_setup, metrics, sampler
from predictor.engine import rows as rowlib
from predictor.engine.config import EngineConfig
from predictor.engine.failures import FailurePolicy, stopping
from predictor.engine.forward import EagerForward
from predictor.engine.health import Heartbeat
from predictor.engine.kv import COLUMN_CHUNK, SlotCache
from predictor.engine.ngram import table_token_ids
from predictor.engine.prefill import PARALLEL_IMAGE_VALUES, Prefilled, Prefiller, decode_stream, image_values
from predictor.engine.rows import Row
from predictor.engine.scheduler import Scheduler, Turns
from predictor.engine.stats import EngineStats
from predictor.engine.types import GenerationRequest
from predictor.errors import Cancelled, EngineFault

log = logging.getLogger(__name__)


class Worker(FailurePolicy):
    def __init__(self, family: Any, device: Any, *, config: EngineConfig, stats: EngineStats):
        self.family = family
        self.model = family.model
        self.device = torch.device(device)
        self.config = config
        self.stats = stats
        self.scheduler = Scheduler(config, cost=lambda r: image_values(r.prepared),
                                   parallel_limit=PARALLEL_IMAGE_VALUES)
        self.inbox: queue.Queue[GenerationRequest | None] = queue.Queue()
        self.rows: list[Row] = []
        self.batch: SlotCache | None = None
        self.whitelist = table_token_ids(family.tokenizer)
        self.eos = family.eos_token_id
        self.max_context = family.max_context
        pad = family.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos)
        self.prefiller = Prefiller(self.model, device, pad_id=self.pad_id, config=config)
        self.pending: list[tuple[futures.Future[list[Prefilled]], list[GenerationRequest]]] = []
        self.heartbeat = Heartbeat(config.stall_after)
        self._stop = threading.Event()
        self._submit_lock = threading.Lock()  # a request is either in the inbox before stop, or refused at once
        self.thread = threading.Thread(target=self._run, name="ocr-engine", daemon=True)
        # the decode forward (engine/forward.py), chosen at start-up: eager, padded, or CUDA graphs (graph_setup.py)
        self.forward: EagerForward = graph_setup.eager_forward(self.model, family, config)
        self.graphs = graph_setup.Decision(False, "not started")

    @property
    def waiting(self) -> Turns[GenerationRequest]:
        return self.scheduler.waiting

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Choose the decode forward (with ``cuda_graphs`` on or auto on CUDA: warm up, capture and self-check
        first, so start-up fails or falls back before anything is served), then start the loop."""
        try:
            self.forward, self.graphs = graph_setup.choose(self)
        except BaseException:
            self.prefiller.shutdown()
            raise
        self.thread.start()

    def stop(self) -> None:
        """Stop after the current step; every request still held (running, prefilling, waiting) gets a 503."""
        with self._submit_lock:
            self._stop.set()
            self.inbox.put(None)
        self.thread.join(timeout=10)
        self.prefiller.shutdown()
        if not self.thread.is_alive():
            self._refuse_all(stopping)  # the loop never ran, or it is gone: nobody else touches the rows now
        else:
            log.error("the engine thread did not stop within 10 s; its requests end at their own timeout")

    def submit(self, request: GenerationRequest) -> None:
        with self._submit_lock:
            if self._stop.is_set():
                request.emit(stopping())
                return
            self.inbox.put(request)

    @property
    def busy(self) -> bool:
        return bool(self.rows or self.waiting or self.pending or not self.inbox.empty())

    # ---- the loop --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        stream = decode_stream(self.device)
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            self._loop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.heartbeat.tick()
            try:
                self._collect(block=not self.rows and not self.waiting and not self.pending)
                if self.heartbeat.fatal is not None:
                    self._refuse_all(lambda: EngineFault("the accelerator failed; this server is restarting"))
                    continue
                self._admit()
                self._merge_prefilled(wait=not self.rows)
                if self.rows:
                    self._step()
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything
                log.exception("engine step failed; failing the running batch")
                self._device_failed(exc)
                self._fail_all(lambda: EngineFault("generation failed inside the model"))

    def _collect(self, block: bool) -> None:
        try:
            item = self.inbox.get(timeout=0.5) if block else self.inbox.get_nowait()
        except queue.Empty:
            return
        while item is not None:
            self.scheduler.add(item)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break

    def _admit(self) -> None:
        """Hand the scheduler's choice of waiting requests to the prefiller (engine/scheduler.py)."""
        for request, error in self.scheduler.drop_dead():
            request.emit(error)
        now = time.monotonic()
        for group in self.scheduler.admit([r.request for r in self.rows], [group for _, group in self.pending]):
            for request in group:
                metrics.WAIT.observe(now - (request.slot.reserved_at if request.slot is not None else request.created))
            self.pending.append((self.prefiller.submit(group), group))

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
                    self._device_failed(exc)
                    for request in outcome.requests:
                        self._fail_request(request, exc, "join")

    @torch.inference_mode()
    def _join(self, outcome: Prefilled) -> None:
        if outcome.error is not None:
            self._device_failed(outcome.error)
            self._fail_request(outcome.requests[0], outcome.error, "prefill")
            return
        assert outcome.logits is not None and outcome.mask is not None
        outcome.hand_over()
        new = []
        for request in outcome.requests:
            row_sampler = sampler.RowSampler(request.params, self.eos, self.whitelist, self.device)
            new.append(rowlib.new_row(request, row_sampler, self.family.tokenizer, self.eos, self.stats.joined))
            self.stats.joined += 1
        choice = sampler.choose(outcome.logits, [r.sampler for r in new], [r.generated for r in new])
        length = int(outcome.mask.shape[1])
        for row in new:  # the last fed token is the one before the cap: it lands at column length + cap - 2
            row.columns = length + row.request.params.max_new_tokens
        self._reserve(outcome.cache, len(self.rows) + len(new), max(r.columns for r in self.rows + new))
        assert self.batch is not None
        self.batch.join(outcome.cache, outcome.mask, [r.prepared.prompt_tokens for r in outcome.requests],
                        choice.tokens)
        first = len(self.rows)
        self.rows.extend(new)
        for request in outcome.requests:
            self.stats.decoding(request.slot)
        self.stats.largest_prefill = max(self.stats.largest_prefill, len(new))
        metrics.PROMPT_TOKENS.inc(sum(r.prepared.prompt_tokens for r in outcome.requests))
        self._take(first, choice.to_host([r.request.params.top_logprobs for r in new]))

    def _reserve(self, like: Any, rows: int, columns: int) -> None:
        """Allocate the slot cache on first use (as large as the budget allows), grow it when needed."""
        if self.batch is None:
            size, budget = self.config.max_batch_size, self.config.max_batch_tokens
            per_row = min(self.max_context + 1, budget // size)
            per_row = max(per_row // COLUMN_CHUNK * COLUMN_CHUNK, min(COLUMN_CHUNK, self.max_context + 1))
            self.batch = SlotCache(like, size, per_row)
            log.info("KV cache: %d slots x %d positions, attended span in buckets of %d", self.batch.slot_capacity,
                     self.batch.columns, self.batch.span_bucket)
        if self.batch.ensure(rows, columns, self.config.max_batch_tokens):
            log.info("KV cache regrown: %d slots x %d positions", self.batch.slot_capacity, self.batch.columns)
            self.forward = self.forward.after_regrow(self.batch)

    # ---- decode ------------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def _step(self) -> None:
        self._drop_dead_rows()
        if not self.rows:
            return
        batch = self.batch
        assert batch is not None
        n = batch.rows
        self.stats.peak_rows = max(self.stats.peak_rows, n)
        metrics.BATCH_SIZE.observe(n)
        t0 = time.perf_counter()
        events = self.stats.timer.events()
        try:
            f0 = time.perf_counter()
            logits = self.forward(batch)  # begins the step: float32 [rows, vocab]
            forward_s = time.perf_counter() - f0
            choice = sampler.choose(logits, [r.sampler for r in self.rows], [r.generated for r in self.rows])
            batch.next_ids[:n].copy_(choice.tokens)
            batch.end_step()  # only once the step fully succeeded: a failed step is redone at the same column
            if events is not None:
                events[1].record()
            t1 = time.perf_counter()
            picked = choice.to_host([r.request.params.top_logprobs for r in self.rows])  # the step's one sync
            t2 = time.perf_counter()
        except Exception as exc:  # noqa: BLE001
            self._step_failed(exc)
            return
        self.stats.steps += 1
        for row in self.rows:
            row.position += 1
        self._take(0, picked)
        metrics.GENERATED_TOKENS.inc(n)
        self.stats.timer.add(n, (t0, t1, t2, time.perf_counter()), forward_s, events)

    def _take(self, first: int, picked: list[sampler.Picked]) -> None:
        """Apply chosen tokens to rows ``first..``; finish, fail and remove rows as needed."""
        done: list[int] = []
        broken: dict[int, Exception] = {}
        for i, choice in enumerate(picked, start=first):
            row = self.rows[i]
            if choice.failed:
                log.warning("request %s: no valid next-token distribution (NaN or overflow)", row.request.request_id)
                broken[i] = EngineFault("sampling failed for this request (the next-token distribution was not a "
                                        "number); try temperature 0 or a larger temperature")
                continue
            try:
                if rowlib.accept(row, choice, self.eos, self.max_context):
                    done.append(i)
            except Exception:  # noqa: BLE001 - one row's bookkeeping error fails that row only
                log.exception("request %s failed after sampling", row.request.request_id)
                broken[i] = EngineFault("generation failed for this request")
        for i in done:
            try:
                rowlib.finish(self.rows[i], self.family.tokenizer)
            except Exception:  # noqa: BLE001
                log.exception("finishing request %s failed", self.rows[i].request.request_id)
                broken[i] = EngineFault("generation failed for this request")
        for i, error in broken.items():
            self.rows[i].request.emit(error)
            metrics.FINISHED.labels(reason="error").inc()
            assert self.batch is not None
            self.batch.scrub(i)  # a NaN left in its slot must not reach the next row through masked columns
        if done or broken:
            self._remove(sorted(set(done) | set(broken)))

    def _drop_dead_rows(self) -> None:
        gone = self.scheduler.dead_rows([r.request for r in self.rows])
        for i, error in gone:
            self.rows[i].request.emit(error)
            metrics.FINISHED.labels(reason="cancelled" if isinstance(error, Cancelled) else "timeout").inc()
        if gone:
            self._remove([i for i, _ in gone])

    def _remove(self, indices: list[int]) -> None:
        assert self.batch is not None
        order = self.batch.remove(indices)
        self.rows = [self.rows[i] for i in order]
