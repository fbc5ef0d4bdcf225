"""OCR of documents, whatever protocol they came by: resolved options -> preprocessing -> engine -> output.

Every page of every document of a request runs concurrently (pages share decode steps), streaming or not, and
the pages' outputs are merged in one place (``merge_pages``) for every protocol. Preprocessing runs in a thread
(never on the event loop, never in the model's worker thread) so decode steps of the running batch are not held
up by image resizing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from predictor.config import Settings
from predictor.engine.engine import Engine
from predictor.engine.types import Delta, GenerationResult, SamplingParams
from predictor.families.base import ModelFamily, PreparedPrompt
from predictor.ocr import grounding
from predictor.ocr.aio import FairGate, gather_or_cancel
from predictor.ocr.documents import Page
from predictor.ocr.options import OcrOptions
from predictor.ocr.resolve import Document, ResolvedOptions, Resolver

PAGE_SEPARATOR = "\n\n<--- Page Split --->\n\n"  # DeepSeek's own separator between pages


@dataclass
class OcrOutput:
    text: str  # clean text (grounding tags removed) unless raw was asked for
    raw_text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    image_tokens: int
    blocks: list[dict[str, Any]] = field(default_factory=list)  # a multi-page output's carry their "page"
    rendered_png: str | None = None  # base64 PNG with the boxes drawn, when render was asked for
    ttft_s: float | None = None  # from the start of preprocessing to the first sampled token
    pages: list[OcrOutput] = field(default_factory=list)  # per page, for a multi-page output

    @property
    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens, "image_tokens": self.image_tokens}

    @property
    def page_outputs(self) -> list[OcrOutput]:
        return self.pages or [self]


class OcrService:
    def __init__(self, settings: Settings, family: ModelFamily, engine: Engine, in_prefill: int = 1):
        """``in_prefill``: pages the engine may be prefilling at once (prefill batch x prefill workers)."""
        self.settings = settings
        self.family = family
        self.engine = engine
        self.resolver = Resolver(settings, family)
        # A prepared page holds its pixel tensors (~55 MB for a letter page in the v2 family) until it is prefilled.
        # Pages beyond the running batch plus what the prefill workers take at once wait here unprepared, holding only
        # their engine slot: a 32-page PDF or a full queue then costs a bounded amount of memory, not one prepared
        # page per queued page (measured: 32-page PDF peak RSS 2.9 GB -> 1.9 GB over idle on CPU). Requests take
        # turns for these places, as for prefill (engine/scheduler.py), and one request holds all but one of them, so
        # the next request starts at once instead of after a page of the PDF ahead of it.
        places = settings.max_batch_size + max(in_prefill, 1)
        self.in_work = FairGate(places, per_owner=places - 1)
        # Rendering and preparing a page is CPU work in a thread of the default pool, which parsing requests uses too:
        # run a few at a time, in turns by request, so a PDF's pages neither fill that pool (a request arriving
        # behind them would wait for all of them to be parsed) nor slow each other down all at once; one more
        # place than one request may hold lets the next request's page start at once.
        preparing = max(2, in_prefill, (os.cpu_count() or 2) // 2)
        self.preparing = FairGate(preparing + 1, per_owner=preparing)

    # ---- one page ---------------------------------------------------------------------------------------------

    async def _prepare(self, page: Page, options: ResolvedOptions,
                       owner: Hashable) -> tuple[Image.Image, PreparedPrompt, SamplingParams]:
        async with self.preparing.hold(owner):
            image = await _pixels(page)
            prepared = await asyncio.to_thread(self.family.prepare, image, options.prompt, options.image)
        return image, prepared, options.sampling(prepared.prompt_tokens, self.family.max_context)

    async def run(self, page: Page, options: ResolvedOptions | OcrOptions, request_id: str = "",
                  owner: Hashable | None = None) -> OcrOutput:
        """OCR one page. Raw ``OcrOptions`` are resolved first (as for an image). ``owner``: the request the page
        belongs to (the pages of one request take one turn between them); default: a request of its own."""
        if isinstance(options, OcrOptions):
            options = self.resolver.options(options)
        owner = owner if owner is not None else object()
        async with self.engine.slot(owner) as slot, self.in_work.hold(owner):
            started = time.monotonic()
            image, prepared, params = await self._prepare(page, options, owner)
            result = await self.engine.generate(prepared, params, request_id, slot=slot)
        return await self._finish(image, options, result, started)

    async def stream_page(self, page: Page, options: ResolvedOptions, request_id: str = "",
                          owner: Hashable | None = None) -> AsyncIterator[str | OcrOutput]:
        """Yield clean text deltas, then the final ``OcrOutput``. Closing early cancels the generation."""
        owner = owner if owner is not None else object()
        async with self.engine.slot(owner) as slot, self.in_work.hold(owner):
            started = time.monotonic()
            image, prepared, params = await self._prepare(page, options, owner)
            cleaner = None if options.raw or options.labels_are_text else grounding.StreamCleaner()
            raw = ""
            events = self.engine.events(prepared, params, stream=True, request_id=request_id, slot=slot)
            try:
                async for event in events:
                    if isinstance(event, Delta) and options.labels_are_text:
                        continue  # the text is only known once the grounding tags are complete
                    if isinstance(event, Delta):
                        raw += event.text
                        delta = event.text if cleaner is None else cleaner.feed(raw)
                        if delta:
                            yield delta
                    elif isinstance(event, GenerationResult):
                        output = await self._finish(image, options, event, started)
                        if options.labels_are_text:
                            tail = output.text
                        else:
                            tail = cleaner.finish(event.text) if cleaner is not None else ""
                        if tail:
                            yield tail
                        yield output
            finally:
                await events.aclose()

    async def _finish(self, image: Image.Image, options: ResolvedOptions, result: GenerationResult,
                      started: float | None = None) -> OcrOutput:
        parsed = grounding.parse(result.text, image.width, image.height)
        text = parsed.text
        if options.labels_are_text:
            text = "\n".join(b.label for b in parsed.blocks) or parsed.text
        output = OcrOutput(
            text=result.text if options.raw else text, raw_text=result.text,
            finish_reason=result.finish_reason, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens, image_tokens=result.image_tokens,
            blocks=[b.to_dict() for b in parsed.blocks],
            ttft_s=None if started is None or result.first_token_at is None else result.first_token_at - started,
        )
        if options.render:
            png = await asyncio.to_thread(grounding.render, image, parsed.blocks)
            output.rendered_png = base64.b64encode(png).decode("ascii")
        return output

    # ---- documents --------------------------------------------------------------------------------------------

    async def run_documents(self, documents: list[Document], request_id: str = "",
                            owner: Hashable | None = None) -> OcrOutput:
        """Every page of ``documents`` concurrently, merged into one output (pages numbered across documents).
        ``owner``: the request they belong to, when it holds more than these documents."""
        owner = owner if owner is not None else object()
        outputs = await gather_or_cancel(*(self.run(page, doc.options, request_id, owner)
                                         for doc in documents for page in doc.pages))
        return merge_pages(list(outputs))

    async def stream_documents(self, documents: list[Document],
                               request_id: str = "") -> AsyncIterator[str | OcrOutput]:
        """Text deltas of every page in page order (the separator between pages), then the merged output.

        All pages run concurrently, as without streaming: the first page streams live, the others are buffered
        until their turn. Closing early cancels every page."""
        pages = [(page, doc.options) for doc in documents for page in doc.pages]
        queues: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in pages]
        owner = object()  # the pages of this request take one turn between them
        tasks = [asyncio.create_task(self._pump(image, options, request_id, owner, queue))
                 for (image, options), queue in zip(pages, queues, strict=True)]
        outputs: list[OcrOutput] = []
        try:
            for number, queue in enumerate(queues):
                if number:
                    yield PAGE_SEPARATOR
                while True:
                    item = await queue.get()
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, OcrOutput):
                        outputs.append(item)
                        break
                    yield item
            yield merge_pages(outputs)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, page: Page, options: ResolvedOptions, request_id: str, owner: Hashable,
                    queue: asyncio.Queue[Any]) -> None:
        stream = self.stream_page(page, options, request_id, owner)
        try:
            async for item in stream:
                queue.put_nowait(item)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it in page order
            queue.put_nowait(exc)
        finally:
            await stream.aclose()


async def _pixels(page: Page) -> Image.Image:
    """A PDF page is rendered only now, once it holds a place among the pages being worked on."""
    return page if isinstance(page, Image.Image) else await asyncio.to_thread(page)


def merge_pages(outputs: list[OcrOutput]) -> OcrOutput:
    """One output for several pages: texts joined by DeepSeek's separator, usage summed, blocks tagged with their
    page (1-based), ``length`` if any page was cut. A single page is returned as it is."""
    if len(outputs) == 1:
        return outputs[0]
    blocks = [{**block, "page": number} for number, o in enumerate(outputs, 1) for block in o.blocks]
    return OcrOutput(
        text=PAGE_SEPARATOR.join(o.text for o in outputs),
        raw_text=PAGE_SEPARATOR.join(o.raw_text for o in outputs),
        finish_reason="length" if any(o.finish_reason == "length" for o in outputs) else "stop",
        prompt_tokens=sum(o.prompt_tokens for o in outputs),
        completion_tokens=sum(o.completion_tokens for o in outputs),
        image_tokens=sum(o.image_tokens for o in outputs), blocks=blocks, pages=outputs,
        ttft_s=min((o.ttft_s for o in outputs if o.ttft_s is not None), default=None),
    )
