"""The scheduler alone, without a model: admission within the budget, prefill slots, dropping dead requests, and
requests (not pages) taking turns."""

from __future__ import annotations

from collections.abc import Hashable

from predictor.engine.config import EngineConfig
from predictor.engine.scheduler import Scheduler, need
from predictor.engine.types import GenerationRequest, SamplingParams
from predictor.errors import Cancelled, RequestTimeout
from predictor.families.base import PreparedPrompt


def _request(owner: Hashable, prompt: int = 100, cap: int = 50, key: Hashable = "page") -> GenerationRequest:
    prepared = PreparedPrompt(inputs={}, prompt_tokens=prompt, image_tokens=0, group_key=key)
    return GenerationRequest(prepared=prepared, params=SamplingParams(max_new_tokens=cap), owner=owner)


def _config(**kw) -> EngineConfig:
    args = dict(max_batch_size=8, max_batch_tokens=100_000, max_prefill_batch=1, prefill_workers=2)
    args.update(kw)
    return EngineConfig(**args)


def _admit_one_at_a_time(scheduler: Scheduler) -> list[GenerationRequest]:
    """Admit until the queue is empty, one prefill slot at a time, each admitted request finishing at once."""
    order = []
    while len(scheduler):
        groups = scheduler.admit([], prefilling=scheduler.config.prefill_workers - 1)
        assert groups, "nothing admitted with the batch empty"
        order.extend(r for g in groups for r in g)
    return order


def test_a_request_behind_a_32_page_pdf_is_admitted_within_two_admissions():
    """Issue 24 item 1: one request's pages must not hold every prefill slot while a newer request waits."""
    scheduler = Scheduler(_config(prefill_workers=2))
    pdf = [_request("A") for _ in range(32)]
    for page in pdf:
        scheduler.add(page)
    first = scheduler.admit([], prefilling=0)  # the PDF starts: both prefill slots
    assert [len(g) for g in first] == [1, 1]
    short = _request("B")
    scheduler.add(short)
    order = _admit_one_at_a_time(scheduler)
    assert order.index(short) <= 1, order.index(short)
    assert sorted(map(id, order)) == sorted(map(id, pdf[2:] + [short]))  # the PDF still finishes


def test_no_starvation_either_way_with_a_stream_of_short_requests():
    """While single pages keep arriving (one per two prefills), a PDF still gets every other turn, and each single
    page is admitted within two admissions of its arrival."""
    scheduler = Scheduler(_config(prefill_workers=1))
    for _ in range(10):
        scheduler.add(_request("pdf"))
    admitted = []
    for i in range(10):
        scheduler.add(_request(f"single-{i}"))
        for _ in range(2):
            admitted.extend(r.owner for g in scheduler.admit([], prefilling=0) for r in g)
    assert admitted.count("pdf") == 10
    assert all(admitted.index(f"single-{i}") - 2 * i <= 1 for i in range(10)), admitted


def test_turns_follow_arrival_of_requests_and_pages_keep_their_order():
    scheduler = Scheduler(_config(prefill_workers=1))
    pages = {owner: [_request(owner) for _ in range(3)] for owner in ("A", "B", "C")}
    for owner in ("A", "B", "C"):
        for page in pages[owner]:
            scheduler.add(page)
    order = _admit_one_at_a_time(scheduler)
    assert [r.owner for r in order] == ["A", "B", "C"] * 3
    for owner, mine in pages.items():
        assert [r for r in order if r.owner == owner] == mine


def test_admission_budgets_rows_times_the_longest_row_and_a_lone_request_always_fits():
    scheduler = Scheduler(_config(max_batch_tokens=1000, prefill_workers=8))
    long, short = _request("A", prompt=400, cap=100), _request("B", prompt=10, cap=10)
    scheduler.add(long)
    scheduler.add(short)
    # 500 + 20 would fit as a sum, but two rows padded to 500 need 1,000: fits; a third would not
    groups = scheduler.admit([], prefilling=0)
    assert [r for g in groups for r in g] == [long, short]
    third = _request("C", prompt=10, cap=10)
    scheduler.add(third)
    assert scheduler.admit([need(long), need(short)], prefilling=0) == []
    huge = Scheduler(_config(max_batch_tokens=10))
    huge.add(long)
    assert huge.admit([], prefilling=0) == [[long]]


def test_a_request_that_does_not_fit_is_not_overtaken():
    """When the next turn's request does not fit the budget, admission waits (smaller ones do not skip it)."""
    scheduler = Scheduler(_config(max_batch_tokens=1000, prefill_workers=8))
    big, small = _request("A", prompt=800, cap=100), _request("B", prompt=10, cap=10)
    scheduler.add(big)
    scheduler.add(small)
    assert scheduler.admit([200], prefilling=0) == []
    assert scheduler.admit([], prefilling=0)[0] == [big]


def test_prefill_slots_bound_what_is_handed_to_the_prefiller():
    scheduler = Scheduler(_config(max_batch_size=16, prefill_workers=2, max_prefill_batch=4))
    for i in range(12):
        scheduler.add(_request(f"r{i}"))
    groups = scheduler.admit([], prefilling=0)
    assert [len(g) for g in groups] == [4, 4]  # two prefills of four: the rest wait where turns still apply
    assert scheduler.admit([need(r) for g in groups for r in g], prefilling=2) == []
    assert len(scheduler) == 4


def test_groups_hold_only_prompts_that_can_share_a_forward():
    scheduler = Scheduler(_config(prefill_workers=2, max_prefill_batch=4))
    for i, key in enumerate(["x", "y", "x", "y", "x"]):
        scheduler.add(_request(f"r{i}", key=key))
    groups = scheduler.admit([], prefilling=0)
    assert [[r.prepared.group_key for r in g] for g in groups] == [["x", "x", "x"], ["y", "y"]]
    one_slot = Scheduler(_config(prefill_workers=1, max_prefill_batch=4))
    for i, key in enumerate(["x", "y", "x", "z"]):
        one_slot.add(_request(f"r{i}", key=key))
    assert [[r.owner for r in g] for g in one_slot.admit([], prefilling=0)] == [["r0", "r2"]]
    assert [[r.owner for r in g] for g in one_slot.admit([], prefilling=0)] == [["r1"]]  # passed over once only


def test_batch_size_caps_admission():
    scheduler = Scheduler(_config(max_batch_size=3, prefill_workers=8))
    for i in range(5):
        scheduler.add(_request(f"r{i}"))
    assert sum(len(g) for g in scheduler.admit([need(_request("x"))], prefilling=0)) == 2


def test_cancelled_and_expired_requests_are_dropped_wherever_they_wait():
    scheduler = Scheduler(_config())
    kept, cancelled, expired = _request("A"), _request("A"), _request("B")
    cancelled.cancelled.set()
    expired.deadline = 5.0
    for request in (kept, cancelled, expired):
        scheduler.add(request)
    gone = dict((id(r), e) for r, e in scheduler.drop_dead(now=10.0))
    assert isinstance(gone.pop(id(cancelled)), Cancelled)
    assert isinstance(gone.pop(id(expired)), RequestTimeout) and not gone
    assert scheduler.drain() == [kept] and len(scheduler) == 0
