"""The places among pages being worked on (OcrService.in_work): requests take turns, and one request never holds
the last place, so a request arriving behind a PDF starts at once (issue 24 item 1)."""

from __future__ import annotations

import asyncio

from predictor.ocr.gate import FairGate


async def _enter(gate: FairGate, owner: str, log: list[str], release: asyncio.Event) -> None:
    async with gate.hold(owner):
        log.append(owner)
        await release.wait()


def test_a_request_behind_a_pdf_takes_the_place_one_request_may_not_hold():
    async def run():
        gate, log, release = FairGate(4, per_owner=3), [], asyncio.Event()
        pdf = [asyncio.create_task(_enter(gate, "pdf", log, release)) for _ in range(32)]
        await asyncio.sleep(0)
        assert log == ["pdf"] * 3 and gate.held == 3  # the fourth place stays free
        short = asyncio.create_task(_enter(gate, "short", log, release))
        await asyncio.sleep(0)
        entered_at_once = log[-1] == "short"
        release.set()
        await asyncio.gather(*pdf, short)
        return entered_at_once, log, gate

    entered_at_once, log, gate = asyncio.run(run())
    assert entered_at_once and log.count("pdf") == 32 and gate.held == 0


def test_places_go_round_robin_by_request_and_pages_keep_their_order():
    async def run():
        gate, order = FairGate(1), []

        async def page(owner: str, n: int) -> None:
            async with gate.hold(owner):
                order.append(f"{owner}{n}")
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(page("a", n)) for n in range(3)]
        tasks += [asyncio.create_task(page("b", n)) for n in range(2)]
        tasks += [asyncio.create_task(page("c", 0))]
        await asyncio.gather(*tasks)
        return order

    # a0 entered before anyone waited: b and c, never served, go before a's next page; then in turns
    assert asyncio.run(run()) == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_a_cancelled_waiter_leaves_the_queue_and_a_cancelled_holder_frees_its_place():
    async def run():
        gate, log, release = FairGate(1), [], asyncio.Event()
        holder = asyncio.create_task(_enter(gate, "a", log, release))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(_enter(gate, "b", log, release))
        await asyncio.sleep(0)
        waiter.cancel()
        holder.cancel()
        await asyncio.gather(holder, waiter, return_exceptions=True)
        after = asyncio.create_task(_enter(gate, "c", log, release))
        await asyncio.sleep(0)
        release.set()
        await after
        return log, gate

    log, gate = asyncio.run(run())
    assert log == ["a", "c"] and gate.held == 0 and not gate._waiters
