"""The scheduler alone, without a model: admission within the budget, prefill slots, dropping dead requests, and
requests (not pages) taking turns."""

from __future__ import annotations

from collections.abc import Hashable

from predictor.engine.config import EngineConfig
from predictor.engine.scheduler import Scheduler
from predictor.engine.types import GenerationRequest, SamplingParams
from predictor.errors import Cancelled, RequestTimeout
from predictor.families.base import PreparedPrompt


def _request(owner: Hashable, prompt: int = 100, cap: int = 50, key: Hashable = "page",
             values: int = 0) -> GenerationRequest:
    prepared = PreparedPrompt(inputs={"values": values}, prompt_tokens=prompt, image_tokens=0, group_key=key)
    return GenerationRequest(prepared=prepared, params=SamplingParams(max_new_tokens=cap), owner=owner)


def _config(**kw) -> EngineConfig:
    args = dict(max_batch_size=8, max_batch_tokens=100_000, max_prefill_batch=1, prefill_workers=2)
    args.update(kw)
    return EngineConfig(**args)


def _admit_one_at_a_time(scheduler: Scheduler) -> list[GenerationRequest]:
    """Admit until the queue is empty, one prefill slot at a time, each admitted request finishing at once."""
    order = []
    while len(scheduler):
        busy = [[_request("busy")]] * (scheduler.config.prefill_workers - 1)
        groups = scheduler.admit([], busy)
        assert groups, "nothing admitted with the batch empty"
        order.extend(r for g in groups for r in g)
    return order


def test_a_request_behind_a_32_page_pdf_is_admitted_within_two_admissions():
    """Issue 24 item 1: one request's pages must not hold every prefill slot while a newer request waits."""
    scheduler = Scheduler(_config(prefill_workers=2))
    pdf = [_request("A") for _ in range(32)]
    for page in pdf:
        scheduler.add(page)
    first = scheduler.admit([], [])  # the PDF starts: both prefill slots
    assert [len(g) for g in first] == [1, 1]
    short = _request("B")
    scheduler.add(short)
    order = _admit_one_at_a_time(scheduler)
    assert order.index(short) <= 1, order.index(short)
    assert sorted(map(id, order)) == sorted(map(id, pdf[2:] + [short]))  # the PDF still finishes


def test_a_request_arriving_during_a_pdf_page_prefill_goes_before_its_next_page():
    """The PDF's queue emptied and refilled (its pages are prepared one by one) just before a single page arrived:
    the single page still goes first, as the PDF already has a page in prefill."""
    scheduler = Scheduler(_config(prefill_workers=2))
    scheduler.add(_request("pdf"))
    in_prefill = scheduler.admit([], [])[0]
    scheduler.add(_request("pdf"))
    short = _request("short")
    scheduler.add(short)
    assert scheduler.admit([], [in_prefill]) == [[short]]


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
            admitted.extend(r.owner for g in scheduler.admit([], []) for r in g)
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
    groups = scheduler.admit([], [])
    assert [r for g in groups for r in g] == [long, short]
    third = _request("C", prompt=10, cap=10)
    scheduler.add(third)
    assert scheduler.admit([long, short], []) == []
    huge = Scheduler(_config(max_batch_tokens=10))
    huge.add(long)
    assert huge.admit([], []) == [[long]]


def test_a_request_that_does_not_fit_is_not_overtaken():
    """When the next turn's request does not fit the budget, admission waits (smaller ones do not skip it)."""
    scheduler = Scheduler(_config(max_batch_tokens=1000, prefill_workers=8))
    big, small = _request("A", prompt=800, cap=100), _request("B", prompt=10, cap=10)
    scheduler.add(big)
    scheduler.add(small)
    assert scheduler.admit([_request("Z", prompt=150, cap=50)], []) == []
    assert scheduler.admit([], [])[0] == [big]


def test_prefill_slots_bound_what_is_handed_to_the_prefiller():
    scheduler = Scheduler(_config(max_batch_size=16, prefill_workers=2, max_prefill_batch=4))
    for i in range(12):
        scheduler.add(_request(f"r{i}"))
    groups = scheduler.admit([], [])
    assert [len(g) for g in groups] == [4, 4]  # two prefills of four: the rest wait where turns still apply
    assert scheduler.admit([], groups) == []
    assert len(scheduler) == 4


def test_a_prefill_that_would_wait_for_memory_is_not_handed_over_and_keeps_its_turn():
    """Big pages prefill one at a time (the prefiller's memory rule): the second waits here, not in a prefill
    slot, so a small page of another request goes next once the first is done."""
    scheduler = Scheduler(_config(prefill_workers=2), cost=lambda r: r.prepared.inputs["values"], parallel_limit=8)
    big = [_request("pdf", values=10) for _ in range(3)]
    for page in big:
        scheduler.add(page)
    first = scheduler.admit([], [])
    assert first == [[big[0]]]  # a lone prefill always runs, whatever its size
    small = _request("short", values=3)
    scheduler.add(small)
    assert scheduler.admit([], first) == []  # 10 + 3 over the limit: both wait here
    assert scheduler.admit([], []) == [[small]]  # its turn: the PDF had one
    assert scheduler.admit([], [[small]]) == []  # 3 + 10 over the limit
    assert scheduler.admit([], []) == [[big[1]]]


def test_groups_hold_only_prompts_that_can_share_a_forward():
    scheduler = Scheduler(_config(prefill_workers=2, max_prefill_batch=4))
    for i, key in enumerate(["x", "y", "x", "y", "x"]):
        scheduler.add(_request(f"r{i}", key=key))
    groups = scheduler.admit([], [])
    assert [[r.prepared.group_key for r in g] for g in groups] == [["x", "x", "x"], ["y", "y"]]
    one_slot = Scheduler(_config(prefill_workers=1, max_prefill_batch=4))
    for i, key in enumerate(["x", "y", "x", "z"]):
        one_slot.add(_request(f"r{i}", key=key))
    assert [[r.owner for r in g] for g in one_slot.admit([], [])] == [["r0", "r2"]]
    assert [[r.owner for r in g] for g in one_slot.admit([], [])] == [["r1"]]  # passed over once only


def test_batch_size_caps_admission():
    scheduler = Scheduler(_config(max_batch_size=3, prefill_workers=8))
    for i in range(5):
        scheduler.add(_request(f"r{i}"))
    assert sum(len(g) for g in scheduler.admit([_request("x")], [])) == 2


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


def test_the_scheduler_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, predictor.engine.scheduler; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
