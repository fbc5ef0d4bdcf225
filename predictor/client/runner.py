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

from predictor.client import outputs, pages, protocol
from predictor.client.discovery import InputFile
from predictor.client.progress import Progress
from predictor.client.render import draw_boxes
from predictor.client.transport import RequestFailed, Transport
from predictor.ocr.aio import gather_or_cancel

T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    endpoint: protocol.Endpoint
    outdir: Path
    concurrency: int = 8
    task: str | None = None
    mode: str | None = None
    max_tokens: int | None = None
    render: bool = False
    overwrite: bool = False
    dpi: int = pages.PDF_DPI


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
            if not self.options.overwrite and outputs.is_complete(paths, self.options.render):
                self.progress.file_skipped(str(item.relative))
            else:
                todo.append(item)
        if todo:
            await self._check_server()
        counted = await self._count_pages(todo)
        self.progress.set_total(sum(count for _, count in counted))
        queue = iter(counted)

        async def worker() -> None:
            for item, count in queue:  # shared by all workers: each file is taken once
                await self._file(item, count)

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

    async def _count_pages(self, todo: list[InputFile]) -> list[tuple[InputFile, int]]:
        counted = []
        for item in todo:
            if item.kind != "pdf":
                counted.append((item, 1))
                continue
            try:
                counted.append((item, await asyncio.to_thread(pages.pdf_page_count, item.path)))
            except pages.PageError as exc:
                self.progress.file_failed(str(item.relative), str(exc))
        return counted

    async def _file(self, item: InputFile, count: int) -> None:
        started = time.monotonic()
        name = str(item.relative)
        done: list[int] = []  # pages of this file already counted as done
        paths = outputs.output_paths(self.options.outdir, item.stem)
        try:
            await asyncio.to_thread(outputs.forget, paths)
            # all or nothing: a document with a failed page is not written
            results = await gather_or_cancel(*(self._page(item, index, paths, done) for index in range(count)))
            doc = outputs.document(name, item.kind, results, {"model": self.options.endpoint.model,
                                                              "protocol": self.options.endpoint.protocol})
            await asyncio.to_thread(outputs.write_outputs, paths, doc, results)
        except FileFailed as exc:
            self.progress.file_failed(name, str(exc), count - len(done))
        except OSError as exc:
            self.progress.file_failed(name, f"cannot write outputs: {exc}", count - len(done))
        except Exception as exc:  # noqa: BLE001 - one file's unexpected error must not end the whole run
            self.progress.file_failed(name, f"unexpected {type(exc).__name__}: {exc}", count - len(done))
        else:
            self.progress.file_done(name, count, time.monotonic() - started)

    async def _page(self, item: InputFile, index: int, paths: outputs.OutputPaths,
                    done: list[int]) -> protocol.PageResult:
        where = f"page {index + 1}: " if item.kind == "pdf" else ""
        opts = protocol.options(self.options.task, self.options.mode, self.options.max_tokens, item.kind == "pdf")
        try:
            async with self.slots:
                image = await asyncio.to_thread(self._read, item, index)
                body = await asyncio.to_thread(_encode, self.options.endpoint, image, opts)
                answer = await self.transport.post_json(self.options.endpoint.path, body)
            result = protocol.parse_answer(self.options.endpoint.protocol, answer)
            if self.options.render:  # written now, not held: a long PDF's pictures would fill the memory
                await asyncio.to_thread(_write_picture, paths.page_png(index + 1), image, result.blocks)
        except (pages.PageError, RequestFailed, protocol.ProtocolError) as exc:
            raise FileFailed(f"{where}{exc}") from exc
        except OSError as exc:  # the picture for --render could not be decoded or written here
            raise FileFailed(f"{where}{exc}") from exc
        self.progress.stats.add_usage(result.usage)
        self.progress.page_done()
        done.append(index)
        return result

    def _read(self, item: InputFile, index: int) -> pages.PageImage:
        if item.kind == "pdf":
            return pages.render_pdf_page(item.path, index, self.options.dpi)
        return pages.image_file(item.path)


def _write_picture(path: Path, image: pages.PageImage, blocks: list[dict[str, Any]]) -> None:
    outputs.write_atomic(path, draw_boxes(image, blocks))


def _encode(ep: protocol.Endpoint, image: pages.PageImage, opts: dict[str, Any]) -> bytes:
    return json.dumps(protocol.request_body(ep, image, opts)).encode("utf-8")
