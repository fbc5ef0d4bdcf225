"""``python -m predictor.client`` / ``deepseek-ocr``: arguments, the run, the summary, the exit code
(0 all done, 1 a file failed, 2 bad arguments, 130 interrupted)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from predictor.client.protocol import PROTOCOLS
from predictor.constants import DEVICES, TASKS_WITHOUT_REF

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_URL = "http://localhost:8080"


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _dpi(value: str) -> int:
    from predictor.errors import InvalidRequest
    from predictor.ocr.pages import parse_dpi

    try:
        return parse_dpi(int(value))
    except (ValueError, InvalidRequest) as exc:
        raise argparse.ArgumentTypeError(getattr(exc, "message", f"not an integer: {value!r}")) from exc


def _pages(value: str) -> Any:
    from predictor.errors import InvalidRequest
    from predictor.ocr.pages import parse_pages

    try:
        return parse_pages(value, "--pages")
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def _option(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """``--max-tokens`` and ``--max_tokens`` alike: the server's flags use underscores, most CLIs dashes."""
    spellings = dict.fromkeys([f"--{name}", f"--{name.replace('-', '_')}", f"--{name.replace('_', '-')}"])
    parser.add_argument(*spellings, dest=name.replace("-", "_"), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepseek-ocr", description="OCR images and PDFs (files, folders, globs) to Markdown and JSON with a "
        "DeepSeek-OCR server, or in-process with --model_dir.",
        epilog="Outputs: OUTDIR/<path under its folder>.md (pages joined with '<--- Page Split --->', figure links "
        "to <name>_images/{page}_{i}.jpg), .json (per page: text, blocks with boxes, figures, usage, finish_reason), "
        "with --raw .raw.md, with --render .layouts.pdf. Files whose outputs all exist are skipped unless "
        "--overwrite. Exit code 0 when every file succeeded, 1 when one failed, 2 for bad arguments.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image or PDF files, folders (recursed), globs")
    _option(parser, "url", help=f"server root or OpenAI base URL (default $DEEPSEEK_OCR_URL or {DEFAULT_URL})")
    _option(parser, "model_dir", help="run the model in this process from a local checkpoint (no --url)")
    _option(parser, "device", default="auto", choices=DEVICES, help="with --model_dir")
    _option(parser, "model", default="deepseek-ocr", help="served model name (default %(default)s)")
    _option(parser, "api-key", help="sent as 'Authorization: Bearer' (default $DEEPSEEK_OCR_API_KEY, "
            "then $OPENAI_API_KEY)")
    parser.add_argument("-o", "--output", "--outdir", dest="output", default="ocr-output",
                        help="output folder (default %(default)s)")
    _option(parser, "concurrency", type=_positive, default=8, help="pages in flight at once (default %(default)s)")
    _option(parser, "protocol", choices=PROTOCOLS, default="openai", help="API to call (default %(default)s)")
    _option(parser, "task", choices=TASKS_WITHOUT_REF, help="DeepSeek prompt (server default: ocr)")
    _option(parser, "mode", help="resolution mode, e.g. gundam/base/tiny (v1), dynamic/global (v2)")
    _option(parser, "max-tokens", type=_positive, help="generated tokens per page (server default otherwise)")
    _option(parser, "render", action="store_true", help="also write OUTDIR/....layouts.pdf: every page with its "
            "labelled boxes drawn")
    _option(parser, "render-png", action="store_true", help="also write OUTDIR/....page-N.png with the boxes drawn")
    _option(parser, "figures", action=argparse.BooleanOptionalAction, default=None,
            help="crop figures into OUTDIR/<name>_images/ and link them (default: on with --task markdown)")
    _option(parser, "raw", action="store_true", help="also write OUTDIR/....raw.md: the text with grounding tags")
    _option(parser, "pages", type=_pages, help="PDF pages to OCR, e.g. 1-3,7 (1-based; default all)")
    _option(parser, "math", choices=("latex", "dollar"), help="dollar: \\( \\) and \\[ \\] become $ and $$")
    _option(parser, "tables", choices=("html", "markdown"), help="markdown: HTML tables become pipe tables "
            "where they can (no rowspan/colspan)")
    _option(parser, "overwrite", action="store_true", help="OCR again files whose outputs exist")
    _option(parser, "timeout", type=float, default=600.0, help="seconds per request (default %(default)s)")
    _option(parser, "retries", type=int, default=10, help="retries per page on 429/503/connection errors "
            "(default %(default)s)")
    _option(parser, "dpi", type=_dpi, default=144, help="PDF rendering resolution, 72..300 (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.url and args.model_dir:
        parser.error("give --url (a server) or --model_dir (in-process), not both")
    if not args.model_dir:
        args.url = args.url or os.environ.get("DEEPSEEK_OCR_URL") or DEFAULT_URL
        if not args.url.lower().startswith(("http://", "https://")):
            parser.error(f"--url must start with http:// or https://, got {args.url!r}")
    if args.retries < 0 or args.timeout <= 0:
        parser.error("--retries must be 0 or more and --timeout positive")
    from predictor.client.discovery import DiscoveryError, discover
    from predictor.client.progress import Stats
    from predictor.client.runner import ServerUnusable

    try:
        found = discover(args.paths)
    except DiscoveryError as exc:
        print(f"deepseek-ocr: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stats = Stats(files=len(found.inputs), ignored=len(found.skipped))
    for path in found.skipped:
        print(f"not an image or PDF, not sent: {path}", file=sys.stderr)
    try:
        asyncio.run(_run(args, found.inputs, stats))
    except KeyboardInterrupt:
        print(stats.summary(interrupted=True), file=sys.stderr)
        return EXIT_INTERRUPTED
    except _UsageError as exc:
        print(f"deepseek-ocr: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ServerUnusable as exc:
        print(f"deepseek-ocr: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.bad_argument else EXIT_FAILED
    print(stats.summary(), file=sys.stderr)
    return EXIT_FAILED if stats.failed else EXIT_OK


class _UsageError(Exception):
    pass


def figures_wanted(args: argparse.Namespace) -> bool:
    """``--figures`` / ``--no-figures`` as given; by default on for ``--task markdown`` (the task with figures)."""
    return args.task == "markdown" if args.figures is None else args.figures


def api_key(args: argparse.Namespace) -> str | None:
    return args.api_key or os.environ.get("DEEPSEEK_OCR_API_KEY") or os.environ.get("OPENAI_API_KEY") or None


async def _run(args: argparse.Namespace, inputs: list[Any], stats: Any) -> None:
    import httpx

    from predictor.client import protocol
    from predictor.client.progress import Progress
    from predictor.client.runner import Runner, RunOptions
    from predictor.client.transport import RetryPolicy, Transport

    timeout = httpx.Timeout(args.timeout, connect=min(10.0, args.timeout))
    key = api_key(args)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    progress = Progress(stats)
    try:
        async with _client(args, timeout) as (client, url):
            transport = Transport(client, RetryPolicy(max_retries=args.retries), headers, on_retry=progress.retried)
            options = RunOptions(endpoint=protocol.endpoint(url, args.protocol, args.model),
                                 outdir=Path(args.output), concurrency=args.concurrency, task=args.task,
                                 mode=args.mode, max_tokens=args.max_tokens, render=args.render,
                                 overwrite=args.overwrite, dpi=args.dpi, pages=args.pages, math=args.math,
                                 tables=args.tables, raw=args.raw, render_png=args.render_png,
                                 figures=figures_wanted(args))
            await Runner(options, transport, progress).run(inputs)
    finally:
        progress.close()


@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace, timeout: Any) -> AsyncIterator[tuple[Any, str]]:
    """An httpx client and the URL to call: a server, or the server's app in this process."""
    import httpx

    if not args.model_dir:
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            yield client, args.url
        return
    from predictor.client.inprocess import BASE_URL, inprocess_client, settings_for
    from predictor.errors import ConfigError, LoadError

    async with contextlib.AsyncExitStack() as stack:
        try:
            settings = settings_for(args.model_dir, args.device, args.concurrency)
            client = await stack.enter_async_context(inprocess_client(settings, timeout))
        except (ConfigError, LoadError) as exc:  # a directory that is not a checkpoint we can load
            raise _UsageError(f"--model_dir {args.model_dir}: {exc}") from exc
        yield client, BASE_URL
