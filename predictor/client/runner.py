"""The run: skip what is done, count pages, then OCR files concurrently, each file's pages concurrently too,
with at most ``concurrency`` requests in flight (the server batches them), and write each file's outputs once
all its pages are back."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from predictor.client import figures, layouts, outputs, pages, protocol
from predictor.client.discovery import InputFile
from predictor.client.progress import Progress
from predictor.client.render import draw_boxes
from predictor.client.transport import RequestFailed, Transport
from predictor.errors import InvalidRequest
from predictor.ocr.aio import gather_or_cancel
from predictor.ocr.pages import PageRanges, select

T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    endpoint: protocol.Endpoint
    outdir: Path
    concurrency: int = 8
    task: str | None = None
    mode: str | None = None
    max_tokens: int | None = None
    render: bool = False  # STEM.layouts.pdf
    overwrite: bool = False
    dpi: int = pages.PDF_DPI
    figures: bool = False
    pages: PageRanges | None = None  # PDF pages to OCR (every page when None)
    math: str | None = None
    tables: str | None = None
    raw: bool = False  # STEM.raw.md
    render_png: bool = False  # STEM.page-N.png

    def complete(self, paths: outputs.OutputPaths) -> bool:
        return outputs.is_complete(paths, self.render_png, raw=self.raw, layouts=self.render)

    def page_options(self, pdf: bool) -> dict[str, Any]:
        return protocol.options(self.task, self.mode, self.max_tokens, pdf, figures=self.figures or None,
                                math=self.math, table_format=self.tables)


@dataclass
class _Page:
    result: protocol.PageResult
    layout: tuple[bytes, int, int] | None  # the drawn page for the layout PDF (--render)


class FileFailed(Exception):
    pass


class ServerUnusable(Exception):
    """The server cannot do any file: unreachable after retries, unknown model, refused credentials."""

    def __init__(self, message: str, bad_argument: bool):
        super().__init__(message)
        self.bad_argument = bad_argument


class Runner:
    def __init__(self, options: RunOptions, transport: Transport, progress: Progress):
        self.options = options
        self.transport = transport
        self.progress = progress
        self.slots = asyncio.Semaphore(options.concurrency)

    async def run(self, inputs: list[InputFile]) -> None:
        todo = []
        for item in inputs:
            paths = outputs.output_paths(self.options.outdir, item.stem)
            if not self.options.overwrite and self.options.complete(paths):
                self.progress.file_skipped(str(item.relative))
            else:
                todo.append(item)
        if todo:
            await self._check_server()
        counted = await self._count_pages(todo)
        self.progress.set_total(sum(len(indices) for _, indices in counted))
        queue = iter(counted)

        async def worker() -> None:
            for item, indices in queue:  # shared by all workers: each file is taken once
                await self._file(item, indices)

        await gather_or_cancel(*(worker() for _ in range(min(self.options.concurrency, len(counted)) or 1)))

    async def _check_server(self) -> None:
        """Before sending pages, wait until the model is ready (503 while it loads is retried like any 503) and
        stop at once on a wrong URL, model name or API key instead of failing every file the same way."""
        url = self.options.endpoint.model_url
        try:
            await self.transport.get_json(url)
        except RequestFailed as exc:
            bad_argument = exc.status in (401, 403, 404)
            raise ServerUnusable(f"{url}: {exc.message}", bad_argument) from exc

    async def _count_pages(self, todo: list[InputFile]) -> list[tuple[InputFile, list[int]]]:
        """Each file with the 0-based indices of its pages to OCR (``--pages`` applies to PDFs)."""
        counted = []
        for item in todo:
            if item.kind != "pdf":
                counted.append((item, [0]))
                continue
            try:
                count = await asyncio.to_thread(pages.pdf_page_count, item.path)
                counted.append((item, select(self.options.pages, count, count, "the PDF", "--pages")))
            except pages.PageError as exc:
                self.progress.file_failed(str(item.relative), str(exc))
            except InvalidRequest as exc:
                self.progress.file_failed(str(item.relative), exc.message)
        return counted

    async def _file(self, item: InputFile, indices: list[int]) -> None:
        started = time.monotonic()
        name, count = str(item.relative), len(indices)
        done: list[int] = []  # pages of this file already counted as done
        paths = outputs.output_paths(self.options.outdir, item.stem)
        try:
            await asyncio.to_thread(outputs.forget, paths)
            # all or nothing: a document with a failed page is not written
            done_pages = await gather_or_cancel(*(self._page(item, index, paths, done) for index in indices))
            results = [page.result for page in done_pages]
            doc = outputs.document(name, item.kind, results, {"model": self.options.endpoint.model,
                                                              "protocol": self.options.endpoint.protocol},
                                   [index + 1 for index in indices])
            pdf = None
            if self.options.render:
                pdf = await asyncio.to_thread(layouts.layouts_pdf, [p.layout for p in done_pages if p.layout])
            await asyncio.to_thread(outputs.write_outputs, paths, doc, results, self.options.raw, pdf)
        except FileFailed as exc:
            self.progress.file_failed(name, str(exc), count - len(done))
        except OSError as exc:
            self.progress.file_failed(name, f"cannot write outputs: {exc}", count - len(done))
        except Exception as exc:  # noqa: BLE001 - one file's unexpected error must not end the whole run
            self.progress.file_failed(name, f"unexpected {type(exc).__name__}: {exc}", count - len(done))
        else:
            self.progress.file_done(name, count, time.monotonic() - started)

    async def _page(self, item: InputFile, index: int, paths: outputs.OutputPaths, done: list[int]) -> _Page:
        where = f"page {index + 1}: " if item.kind == "pdf" else ""
        opts = self.options.page_options(item.kind == "pdf")
        layout = None
        try:
            async with self.slots:
                image = await asyncio.to_thread(self._read, item, index)
                body = await asyncio.to_thread(_encode, self.options.endpoint, image, opts)
                answer = await self.transport.post_json(self.options.endpoint.path, body)
            result = protocol.parse_answer(self.options.endpoint.protocol, answer)
            # Figures and pictures are written now, not held: a long PDF's images would fill the memory.
            files = figures.relocate(result, index, paths.images.name)
            await asyncio.to_thread(_write_figures, paths.images, files)
            if self.options.render_png:
                await asyncio.to_thread(_write_picture, paths.page_png(index + 1), image, result.blocks)
            if self.options.render:
                layout = await asyncio.to_thread(layouts.layout_page, image, result.blocks)
        except (pages.PageError, RequestFailed, protocol.ProtocolError) as exc:
            raise FileFailed(f"{where}{exc}") from exc
        except OSError as exc:  # the picture for --render could not be decoded or written here
            raise FileFailed(f"{where}{exc}") from exc
        self.progress.stats.add_usage(result.usage)
        self.progress.page_done()
        done.append(index)
        return _Page(result, layout)

    def _read(self, item: InputFile, index: int) -> pages.PageImage:
        if item.kind == "pdf":
            return pages.render_pdf_page(item.path, index, self.options.dpi)
        return pages.image_file(item.path)


def _write_figures(folder: Path, files: list[tuple[str, bytes]]) -> None:
    for name, data in files:
        outputs.write_atomic(folder / name, data)


def _write_picture(path: Path, image: pages.PageImage, blocks: list[dict[str, Any]]) -> None:
    outputs.write_atomic(path, draw_boxes(image, blocks))


def _encode(ep: protocol.Endpoint, image: pages.PageImage, opts: dict[str, Any]) -> bytes:
    return json.dumps(protocol.request_body(ep, image, opts)).encode("utf-8")
