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
import time
from collections.abc import AsyncIterator
from typing import Any

from PIL import Image

from predictor.config import Settings
from predictor.constants import PAGE_SEPARATOR
from predictor.engine.engine import Engine
from predictor.engine.types import Delta, GenerationResult, SamplingParams
from predictor.families.base import ModelFamily, PreparedPrompt
from predictor.ocr import figures, grounding
from predictor.ocr.aio import cancel_all, gather_or_cancel
from predictor.ocr.documents import PageInfo, page_info
from predictor.ocr.options import OcrOptions
from predictor.ocr.postprocess import PageStream, finish_page
from predictor.ocr.resolve import Resolver
from predictor.ocr.types import Document, OcrOutput, Page, ResolvedOptions


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
        # page per queued page (measured: 32-page PDF peak RSS 2.9 GB -> 1.9 GB over idle on CPU).
        self.in_work = asyncio.Semaphore(settings.max_batch_size + max(in_prefill, 1))

    # ---- one page ---------------------------------------------------------------------------------------------

    async def _prepare(self, image: Image.Image, options: ResolvedOptions) -> tuple[PreparedPrompt, SamplingParams]:
        prepared = await asyncio.to_thread(self.family.prepare, image, options.prompt, options.image)
        return prepared, options.sampling(prepared.prompt_tokens, self.family.max_context)

    async def run(self, page: Page, options: ResolvedOptions | OcrOptions, request_id: str = "",
                  number: int | None = None) -> OcrOutput:
        """OCR one page. Raw ``OcrOptions`` are resolved first (as for an image). ``number``: the page's 1-based
        number in the request's output (its number in its document by default)."""
        if isinstance(options, OcrOptions):
            options = self.resolver.options(options)
        info = page_info(page)
        async with self.engine.slot(), self.in_work:
            started = time.monotonic()
            image = await _pixels(page)
            prepared, params = await self._prepare(image, options)
            result = await self.engine.generate(prepared, params, request_id)
        return await self._finish(image, options, result, started, info, number or info.number)

    async def stream_page(self, page: Page, options: ResolvedOptions, request_id: str = "",
                          number: int | None = None) -> AsyncIterator[str | OcrOutput]:
        """Yield clean text deltas, then the final ``OcrOutput``. Closing early cancels the generation."""
        info = page_info(page)
        number = number or info.number
        async with self.engine.slot(), self.in_work:
            started = time.monotonic()
            image = await _pixels(page)
            prepared, params = await self._prepare(image, options)
            cleaner = None if options.raw or options.labels_are_text else PageStream(image, options, number - 1)
            raw = ""
            events = self.engine.events(prepared, params, stream=True, request_id=request_id)
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
                        output = await self._finish(image, options, event, started, info, number)
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
                      started: float | None = None, info: PageInfo | None = None, number: int = 1) -> OcrOutput:
        # Crops encode JPEGs: off the event loop. Without figures the text work is a few ms, done here.
        if options.figures:
            post = await asyncio.to_thread(finish_page, result.text, image, options, number - 1)
        else:
            post = finish_page(result.text, image, options, number - 1)
        output = OcrOutput(
            text=post.text, raw_text=result.text,
            finish_reason=result.finish_reason, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens, image_tokens=result.image_tokens, blocks=post.blocks,
            ttft_s=None if started is None or result.first_token_at is None else result.first_token_at - started,
            figures=post.figures if options.figures else None, figures_skipped=post.figures_skipped,
            page=_page_meta(number, image, info or PageInfo()),
        )
        if options.render:
            png = await asyncio.to_thread(grounding.render, image, post.parsed)
            output.rendered_png = base64.b64encode(png).decode("ascii")
        return output

    # ---- documents --------------------------------------------------------------------------------------------

    async def run_documents(self, documents: list[Document], request_id: str = "") -> OcrOutput:
        """Every page of ``documents`` concurrently, merged into one output (pages numbered across documents)."""
        outputs = await gather_or_cancel(*(self.run(page, options, request_id, number)
                                         for page, options, number in _numbered(documents)))
        figures.within_budget(list(outputs), self.settings.max_response_bytes)
        return merge_pages(list(outputs))

    async def stream_documents(self, documents: list[Document],
                               request_id: str = "") -> AsyncIterator[str | OcrOutput]:
        """Text deltas of every page in page order (the separator between pages), then the merged output.

        All pages run concurrently, as without streaming: the first page streams live, the others are buffered
        until their turn. Closing early cancels every page."""
        pages = _numbered(documents)
        queues: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in pages]
        tasks = [asyncio.create_task(self._pump(image, options, request_id, queue, number))
                 for (image, options, number), queue in zip(pages, queues, strict=True)]
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
            figures.within_budget(outputs, self.settings.max_response_bytes)
            yield merge_pages(outputs)
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await cancel_all(tasks)

    async def _pump(self, page: Page, options: ResolvedOptions, request_id: str,
                    queue: asyncio.Queue[Any], number: int | None = None) -> None:
        stream = self.stream_page(page, options, request_id, number)
        try:
            async for item in stream:
                queue.put_nowait(item)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it in page order
            queue.put_nowait(exc)
        finally:
            await stream.aclose()


def _numbered(documents: list[Document]) -> list[tuple[Page, ResolvedOptions, int]]:
    """Each page with its number in the request: its number in its document after all pages of the documents
    before it (selected or not), so one document's pages keep their own numbers and numbers never repeat."""
    numbered, offset = [], 0
    for doc in documents:
        infos = [page_info(page) for page in doc.pages]
        numbered += [(page, doc.options, offset + info.number) for page, info in zip(doc.pages, infos, strict=True)]
        offset += infos[0].total if infos else 0
    return numbered


def _page_meta(number: int, image: Image.Image, info: PageInfo) -> dict[str, Any]:
    meta: dict[str, Any] = {"page": number, "width": image.width, "height": image.height}
    if info.dpi is not None:
        meta["dpi"] = info.dpi
        meta["scaled_to_pixel_limit"] = info.scaled
    return meta


async def _pixels(page: Page) -> Image.Image:
    """A PDF page is rendered only now, once it holds a place among the pages being worked on."""
    return page if isinstance(page, Image.Image) else await asyncio.to_thread(page)


def figure_fields(output: OcrOutput) -> dict[str, Any]:
    """A page's crops (when figures was asked) and skipped boxes, for the protocols' per-page objects."""
    fields: dict[str, Any] = {}
    if output.figures is not None:
        fields["figures"] = output.figures
    if output.figures_skipped:
        fields["figures_skipped"] = output.figures_skipped
    return fields


def merge_pages(outputs: list[OcrOutput]) -> OcrOutput:
    """One output for several pages: texts joined by DeepSeek's separator, usage summed, blocks tagged with their
    page (1-based), ``length`` if any page was cut. A single page is returned as it is."""
    if len(outputs) == 1:
        return outputs[0]
    blocks = [{**block, "page": o.page.get("page", number)}
              for number, o in enumerate(outputs, 1) for block in o.blocks]
    return OcrOutput(
        text=PAGE_SEPARATOR.join(o.text for o in outputs),
        raw_text=PAGE_SEPARATOR.join(o.raw_text for o in outputs),
        finish_reason="length" if any(o.finish_reason == "length" for o in outputs) else "stop",
        prompt_tokens=sum(o.prompt_tokens for o in outputs),
        completion_tokens=sum(o.completion_tokens for o in outputs),
        image_tokens=sum(o.image_tokens for o in outputs), blocks=blocks, pages=outputs,
        ttft_s=min((o.ttft_s for o in outputs if o.ttft_s is not None), default=None),
    )
