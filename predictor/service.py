"""One OCR request, whatever protocol it came by: options -> prompt -> preprocessing -> engine -> output.

Preprocessing runs in a thread (never on the event loop, never in the model's worker thread) so that decode
steps of the running batch are not held up by image resizing.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from predictor import grounding, tasks
from predictor.config import Settings
from predictor.engine.engine import Engine
from predictor.engine.ngram import PDF_NGRAM
from predictor.engine.types import Delta, GenerationResult, SamplingParams
from predictor.errors import InvalidRequest
from predictor.families.base import ImageOptions, ModelFamily, PreparedPrompt
from predictor.options import OcrOptions


@dataclass
class OcrOutput:
    text: str  # clean text (grounding tags removed) unless raw was asked for
    raw_text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    image_tokens: int
    blocks: list[dict[str, Any]] = field(default_factory=list)
    rendered_png: str | None = None  # base64 PNG with the boxes drawn, when render was asked for
    ttft_s: float | None = None  # from the start of preprocessing to the first sampled token
    pages: list[OcrOutput] = field(default_factory=list)  # per page, for a multi-page document

    @property
    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens, "image_tokens": self.image_tokens}


class OcrService:
    def __init__(self, settings: Settings, family: ModelFamily, engine: Engine):
        self.settings = settings
        self.family = family
        self.engine = engine

    async def _prepare(self, image: Image.Image, options: OcrOptions,
                       pdf: bool = False) -> tuple[PreparedPrompt, SamplingParams]:
        image_options = self.family.check_options(ImageOptions(mode=options.mode or self.settings.default_mode,
                                                               max_crops=options.max_crops))
        prompt = tasks.build_prompt(options.task, options.prompt, options.ref)
        prepared = await asyncio.to_thread(self.family.prepare, image, prompt, image_options)
        return prepared, self._sampling(prepared, options, pdf)

    def _sampling(self, prepared: PreparedPrompt, options: OcrOptions, pdf: bool = False) -> SamplingParams:
        room = self.family.max_context - prepared.prompt_tokens
        if room < 1:
            raise InvalidRequest(f"the prompt takes {prepared.prompt_tokens} tokens and leaves no room in the "
                                 f"{self.family.max_context}-token context; use a smaller mode", param="mode")
        # DeepSeek's PDF script uses a shorter guard (20/50) than its image script (30/90, our flags' default).
        ngram_size, ngram_window = PDF_NGRAM if pdf else (self.settings.ngram_size, self.settings.ngram_window)
        wanted = options.max_tokens or self.settings.default_max_tokens
        max_new = min(wanted, self.settings.max_new_tokens, room)
        return SamplingParams(
            max_new_tokens=max_new, min_new_tokens=min(options.min_tokens, max_new), ignore_eos=options.ignore_eos,
            temperature=options.temperature, top_p=options.top_p, seed=options.seed, stop=options.stop,
            ngram_size=ngram_size if options.ngram_size is None else options.ngram_size,
            ngram_window=ngram_window if options.ngram_window is None else options.ngram_window,
        )

    async def run(self, image: Image.Image, options: OcrOptions, request_id: str = "",
                  pdf: bool = False) -> OcrOutput:
        async with self.engine.slot():
            started = time.monotonic()
            prepared, params = await self._prepare(image, options, pdf)
            result = await self.engine.generate(prepared, params, request_id)
        return await self._finish(image, options, result, started)

    async def run_document(self, pages: list[Image.Image], options: OcrOptions, request_id: str = "",
                           pdf: bool = False) -> OcrOutput:
        """All pages of one document concurrently (they share decode steps), merged into one output."""
        outputs = await asyncio.gather(*(self.run(page, options, request_id, pdf) for page in pages))
        return outputs[0] if len(outputs) == 1 else merge_pages(list(outputs))

    async def stream(self, image: Image.Image, options: OcrOptions, request_id: str = "",
                     pdf: bool = False) -> AsyncIterator[str | OcrOutput]:
        """Yield clean text deltas, then the final ``OcrOutput``. Closing early cancels the generation."""
        async with self.engine.slot():
            started = time.monotonic()
            prepared, params = await self._prepare(image, options, pdf)
            labels_only = _labels_are_text(options)
            cleaner = None if options.raw or labels_only else grounding.StreamCleaner()
            raw = ""
            events = self.engine.events(prepared, params, stream=True, request_id=request_id)
            try:
                async for event in events:
                    if isinstance(event, Delta) and labels_only:
                        continue  # the text is only known once the grounding tags are complete
                    if isinstance(event, Delta):
                        raw += event.text
                        delta = event.text if cleaner is None else cleaner.feed(raw)
                        if delta:
                            yield delta
                    elif isinstance(event, GenerationResult):
                        output = await self._finish(image, options, event, started)
                        if labels_only:
                            tail = output.text
                        else:
                            tail = cleaner.finish(event.text) if cleaner is not None else ""
                        if tail:
                            yield tail
                        yield output
            finally:
                await events.aclose()

    async def _finish(self, image: Image.Image, options: OcrOptions, result: GenerationResult,
                      started: float | None = None) -> OcrOutput:
        parsed = grounding.parse(result.text, image.width, image.height)
        text = parsed.text
        if _labels_are_text(options):
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


def _labels_are_text(options: OcrOptions) -> bool:
    """With the `grounding` task ("OCR this image.") each ref label IS the recognised text of its box, so the
    clean text is the labels, one per line (with `markdown`, labels are layout classes and the text follows)."""
    return options.task == "grounding" and options.prompt is None and not options.raw


PAGE_SEPARATOR = "\n\n<--- Page Split --->\n\n"  # DeepSeek's own separator between pages


def merge_pages(outputs: list[OcrOutput]) -> OcrOutput:
    """One output for a multi-page document: texts joined by DeepSeek's separator, usage summed, blocks tagged
    with their page (1-based), `length` if any page was cut."""
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
