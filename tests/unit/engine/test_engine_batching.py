"""The batching engine: greedy output identical alone and in a batch, failures isolated, slots freed."""

from __future__ import annotations

import asyncio
import copy
import threading

import pytest
import torch

from predictor.engine.config import EngineConfig
from predictor.engine.engine import Engine
from predictor.engine.prefill import PARALLEL_IMAGE_VALUES, image_values
from predictor.engine.types import Delta, GenerationResult, SamplingParams
from predictor.errors import EngineFault, Overloaded
from predictor.families.base import ImageOptions
from tests.conftest import page_image
from tests.engine_rows import running_engine


def _engine(family, **kw) -> Engine:
    args = dict(max_batch_size=8, max_batch_tokens=100_000, max_queue=8, request_timeout=120.0, max_prefill_batch=4)
    args.update(kw)
    engine = running_engine(family, **args)
    return engine


CASES = [((640, 200), "dynamic", 24), ((1000, 1400), "dynamic", 9), ((300, 900), "global", 17),
         ((2000, 700), "dynamic", 31)]


def _prepared(family, size, mode, text="Free OCR."):
    return family.prepare(page_image(size, f"page {size}"), f"<image>\n{text}", ImageOptions(mode=mode))


def _params(n: int, **kw) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, min_new_tokens=n, ngram_size=0, **kw)


async def _run_all(engine: Engine, items):
    async def one(prepared, params):
        async with engine.slot():
            return await engine.generate(copy.copy(prepared), params)  # the engine consumes it
    return await asyncio.gather(*(one(p, s) for p, s in items))


@pytest.mark.slow
def test_greedy_tokens_identical_alone_and_batched(family):
    engine = _engine(family)
    try:
        items = [(_prepared(family, size, mode), _params(n)) for size, mode, n in CASES]
        alone = [asyncio.run(_run_all(engine, [item]))[0] for item in items]
        batched = asyncio.run(_run_all(engine, items))
    finally:
        engine.stop()
    for a, b, (_, _, n) in zip(alone, batched, CASES, strict=True):
        assert len(a.token_ids) == n
        assert a.token_ids == b.token_ids
        assert a.text == b.text
    assert engine.stats.steps > 0
    assert engine.stats.largest_prefill > 1  # requests that arrived together were prefilled together


def test_matches_transformers_generate(family):
    prepared = _prepared(family, (640, 200), "dynamic")
    with torch.no_grad():
        ref = family.model.generate(**prepared.inputs, max_new_tokens=12, min_new_tokens=12, do_sample=False)
    expected = ref[0, prepared.prompt_tokens:].tolist()
    engine = _engine(family)
    try:
        got = asyncio.run(_run_all(engine, [(prepared, _params(12))]))[0]
    finally:
        engine.stop()
    assert got.token_ids == expected


@pytest.mark.slow
def test_poisoned_request_fails_alone(family):
    engine = _engine(family)
    good = [(_prepared(family, size, mode), _params(n)) for size, mode, n in CASES[:2]]
    bad = _prepared(family, (640, 200), "dynamic")
    bad.inputs["pixel_values"] = bad.inputs["pixel_values"][:, :, :100, :100]  # fails inside the vision tower

    async def scenario():
        async def one(prepared, params):
            async with engine.slot():
                try:
                    return await engine.generate(copy.copy(prepared), params)  # the engine consumes it
                except Exception as exc:  # noqa: BLE001 - the test compares the failure itself
                    return exc
        return await asyncio.gather(one(*good[0]), one(bad, _params(5)), one(*good[1]))

    try:
        alone = [asyncio.run(_run_all(engine, [item]))[0] for item in good]
        first, poisoned, second = asyncio.run(scenario())
    finally:
        engine.stop()
    assert isinstance(poisoned, EngineFault)
    assert first.token_ids == alone[0].token_ids and second.token_ids == alone[1].token_ids
    assert engine.in_flight == 0


def test_queue_full_is_429(family):
    engine = Engine(family, "cpu", config=EngineConfig(max_batch_size=1, max_batch_tokens=10_000, max_queue=1,
                                                       request_timeout=60))

    async def scenario():
        async with engine.slot():
            async with engine.slot():
                with pytest.raises(Overloaded) as info:
                    async with engine.slot():
                        pass
            async with engine.slot():  # a freed slot is usable again
                assert engine.in_flight == 2
        return info.value

    refused = asyncio.run(scenario())
    assert refused.status == 429 and refused.retry_after
    assert engine.in_flight == 0


def test_cancelled_stream_frees_its_row(family):
    engine = _engine(family)
    prepared = _prepared(family, (640, 200), "dynamic")

    async def scenario():
        async with engine.slot():
            events = engine.events(copy.copy(prepared), _params(2000), stream=True)
            got = 0
            async for event in events:
                assert isinstance(event, Delta | GenerationResult)
                got += 1
                if got == 3:
                    break
            await events.aclose()
        for _ in range(100):
            if not engine.worker.rows:
                break
            await asyncio.sleep(0.02)
        return got

    try:
        assert asyncio.run(scenario()) == 3
        assert engine.worker.rows == [] and engine.worker.batch.rows == 0
        assert engine.in_flight == 0
    finally:
        engine.stop()


def test_stop_string_and_streaming_concatenation(family):
    engine = _engine(family)
    prepared = _prepared(family, (640, 200), "dynamic")

    async def collect(params, stream):
        deltas, result = [], None
        async with engine.slot():
            async for event in engine.events(copy.copy(prepared), params, stream=stream):
                if isinstance(event, Delta):
                    deltas.append(event.text)
                else:
                    result = event
        return "".join(deltas), result

    try:
        streamed, result = asyncio.run(collect(_params(40), True))
        assert streamed == result.text and len(result.token_ids) == 40
        plain = asyncio.run(collect(_params(40), False))[1]
        assert plain.text == result.text
        stop = result.text[len(result.text) // 2:][:3]
        if stop:
            cut_stream, cut = asyncio.run(collect(_params(40, stop=(stop,)), True))
            assert cut.finish_reason == "stop" and stop not in cut.text
            assert cut_stream == cut.text and result.text.startswith(cut.text)
    finally:
        engine.stop()


def test_grounding_task_text_is_the_labels(family):
    """`grounding` outputs carry the recognised text in the ref labels; content lists them, blocks keep boxes."""
    from predictor.config import Settings
    from predictor.ocr.options import OcrOptions
    from predictor.ocr.service import OcrService

    service = OcrService(Settings(), family, engine=None)  # _finish needs no engine
    resolved = service.resolver.options
    raw = ("<|ref|>Invoice 42<|/ref|><|det|>[[10, 20, 500, 80]]<|/det|>\n"
           "<|ref|>Total: 9<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>")
    result = GenerationResult(text=raw, token_ids=[1], finish_reason="stop", prompt_tokens=3, completion_tokens=1,
                              image_tokens=1)
    image = page_image((1000, 500))
    out = asyncio.run(service._finish(image, resolved(OcrOptions(task="grounding")), result))
    assert out.text == "Invoice 42\nTotal: 9"
    assert out.blocks[0]["boxes_px"] == [[10, 10, 501, 40]]
    plain = asyncio.run(service._finish(image, resolved(OcrOptions(task="markdown")), result))
    assert plain.text == "" and len(plain.blocks) == 2
    assert not resolved(OcrOptions(task="grounding", raw=True)).labels_are_text


def test_repetition_guard_applies_per_row(family):
    """With a 3-gram guard over a 400-token window no 3-gram repeats; without it the random model loops."""
    engine = _engine(family)
    prepared = _prepared(family, (640, 200), "dynamic")
    guarded = SamplingParams(max_new_tokens=150, min_new_tokens=150, ngram_size=3, ngram_window=400)
    free = _params(150)
    try:
        with_guard, without = asyncio.run(_run_all(engine, [(prepared, guarded), (prepared, free)]))
    finally:
        engine.stop()
    whitelist = engine.worker.whitelist

    def repeats(ids):
        grams = [tuple(ids[i:i + 3]) for i in range(len(ids) - 2) if ids[i + 2] not in whitelist]
        return len(grams) - len(set(grams))

    assert repeats(with_guard.token_ids) == 0
    assert repeats(without.token_ids) > 0  # the same prompt loops without the guard


def test_out_of_memory_is_503_and_the_engine_recovers(family):
    from predictor.errors import OutOfMemory

    engine = _engine(family)
    prepared = _prepared(family, (640, 200), "dynamic")
    model = engine.worker.prefiller.model

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    try:
        model.forward = exhausted  # the vision encoder runs out of memory on this page
        with pytest.raises(OutOfMemory) as info:
            asyncio.run(_run_all(engine, [(prepared, _params(4))]))
        assert info.value.status == 503 and info.value.retry_after
        del model.forward
        ok = asyncio.run(_run_all(engine, [(prepared, _params(4))]))[0]
        assert len(ok.token_ids) == 4
        assert engine.in_flight == 0
    finally:
        engine.stop()


def test_request_timeout_frees_the_row(family):
    from prometheus_client import REGISTRY

    from predictor.errors import RequestTimeout

    def finished(reason: str) -> float:
        return REGISTRY.get_sample_value("deepseek_ocr_requests_finished_total", {"reason": reason}) or 0.0

    engine = _engine(family, request_timeout=1.0)
    prepared = _prepared(family, (640, 200), "dynamic")
    before = finished("timeout"), finished("cancelled")
    try:
        with pytest.raises(RequestTimeout) as info:
            asyncio.run(_run_all(engine, [(prepared, _params(100_000))]))
        assert info.value.status == 504
        for _ in range(100):
            if not engine.worker.rows:
                break
            asyncio.run(asyncio.sleep(0.02))
        assert engine.worker.rows == [] and engine.in_flight == 0
        assert (finished("timeout"), finished("cancelled")) == (before[0] + 1, before[1])  # a timeout is no cancel
    finally:
        engine.stop()


class _Rendezvous:
    """The real model, but each prefill waits until another prefill is inside the model too: it only gets through
    when two prefills really run at the same time (one worker would break the barrier after its timeout)."""

    def __init__(self, model, parties: int, timeout: float = 30):
        self.model = model
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.met = 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, **kwargs):
        self.barrier.wait()
        self.met += 1
        return self.model(**kwargs)


def test_two_prefill_workers_encode_two_pages_at_once(family):
    pages = (("Free OCR.", 24), ("OCR.", 9))
    items = [(_prepared(family, (640, 200), "global", text), _params(n)) for text, n in pages]
    assert sum(image_values(p) for p, _ in items) <= PARALLEL_IMAGE_VALUES
    alone = _engine(family, max_prefill_batch=1)
    try:
        expected = [asyncio.run(_run_all(alone, [item]))[0].token_ids for item in items]
    finally:
        alone.stop()
    engine = _engine(family, max_prefill_batch=1, prefill_workers=2)
    prefiller = engine.worker.prefiller
    prefiller.model = _Rendezvous(family.model, parties=2)
    try:
        got = asyncio.run(_run_all(engine, items))
    finally:
        engine.stop()
    assert prefiller.model.met == 2 and prefiller.most_at_once == 2  # two forwards of one page, together
    assert [g.token_ids for g in got] == expected


def test_a_one_view_page_is_encoded_beside_a_page_with_tiles(family):
    """Issue 24 (head-of-line): a single page sent while a PDF page with tiles is being encoded starts its prefill on
    the second worker at once, instead of waiting for the PDF page (two pages with tiles still never pair up)."""
    items = [(_prepared(family, (1000, 1400), "dynamic"), _params(3)),
             (_prepared(family, (640, 200), "global", "OCR."), _params(3))]
    assert sum(image_values(p) for p, _ in items) <= PARALLEL_IMAGE_VALUES
    engine = _engine(family, max_prefill_batch=1, prefill_workers=2)
    prefiller = engine.worker.prefiller
    prefiller.model = _Rendezvous(family.model, parties=2, timeout=10)
    try:
        results = asyncio.run(_run_all(engine, items))
    finally:
        engine.stop()
    assert [len(r.token_ids) for r in results] == [3, 3]
    assert prefiller.model.met == 2 and prefiller.most_at_once == 2


def test_pages_with_tiles_are_encoded_one_at_a_time(family):
    """Their vision-encoder activations are large: two workers never run two of them side by side."""
    items = [(_prepared(family, (1000, 1400), "dynamic", text), _params(4)) for text in ("Free OCR.", "OCR.")]
    assert 2 * image_values(items[0][0]) > PARALLEL_IMAGE_VALUES
    engine = _engine(family, max_prefill_batch=1, prefill_workers=2)
    try:
        results = asyncio.run(_run_all(engine, items))
    finally:
        engine.stop()
    assert [len(r.token_ids) for r in results] == [4, 4]
    assert engine.worker.prefiller.most_at_once == 1 and engine.stats.largest_prefill == 1
