"""Batching benchmark: the same pages at concurrency 1 and C, side by side in one run, through the real service
(preprocessing + engine), with fixed output lengths (min_tokens = max_tokens). Prints one JSON line.

    python bench/bench_batching.py                         # tiny DeepSeek-OCR-2, CPU, 512 tokens, C=8
    python bench/bench_batching.py --tokens 512 2048 --repeats 3   # what `make bench` runs
    python bench/bench_batching.py --page a4 --tokens 2048     # A4 scans at 150 DPI: tiles, ~1,100-token prompts
    python bench/bench_batching.py --tiny v1 --tokens 256
    python bench/bench_batching.py --checkpoint /mnt/models --device cuda --concurrency 1 8 32
    python bench/bench_batching.py --full-size v1 --device cuda --concurrency 1 8 32   # random bf16 weights

With ``--repeats N`` each output length runs N times (concurrency 1 then C, side by side, each time) and the
median speed-up is reported with every run's. Each level also reports the engine's per-step split: host time,
device time and sync wait per decode step (see ``predictor/engine/timing.py``). Also measures the time to first
token of a short request sent while a long one generates, against the same short request on an idle engine.
Ratios are what to compare; absolute numbers on a shared CPU are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bench.full_size import full_size_family  # noqa: E402
from predictor.config import Settings  # noqa: E402
from predictor.engine import experts  # noqa: E402
from predictor.engine.config import EngineConfig  # noqa: E402
from predictor.engine.engine import Engine  # noqa: E402
from predictor.ocr.aio import gather_or_cancel  # noqa: E402
from predictor.ocr.options import OcrOptions  # noqa: E402
from predictor.ocr.runtime import load_runtime  # noqa: E402
from predictor.ocr.service import OcrService  # noqa: E402

NGRAM = 30  # the server default guard (30/90) runs, as in production


PAGE_SIZES = {"screen": (640, 480), "a4": (1240, 1754)}  # a4: 210 x 297 mm scanned at 150 DPI


def pages(n: int, kind: str = "screen") -> list[Any]:
    from PIL import Image, ImageDraw

    width, height = PAGE_SIZES[kind]
    out = []
    for i in range(n):
        image = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(image)
        for line in range((height - 40) // 36):
            draw.text((20, 20 + 36 * line), f"Page {i} line {line}: the quick brown fox {i * line}", fill="black")
        out.append(image)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_level(service: OcrService, images: list[Any], concurrency: int, tokens: int,
                    options: OcrOptions | None = None) -> dict[str, float]:
    options = options or OcrOptions(max_tokens=tokens, min_tokens=tokens, ngram_size=NGRAM)
    semaphore = asyncio.Semaphore(concurrency)
    ttfts: list[float] = []
    latencies: list[float] = []

    async def one(image: Any) -> int:
        # TTFT comes from the engine (first sampled token), not from streamed text: random weights with the tiny
        # tokenizer often produce tokens that decode to nothing.
        async with semaphore:
            start = time.perf_counter()
            output = await service.run(image, options)
            latencies.append(time.perf_counter() - start)
            ttfts.append(output.ttft_s if output.ttft_s is not None else latencies[-1])
            return output.completion_tokens

    start = time.perf_counter()
    counts = await gather_or_cancel(*(one(img) for img in images))
    wall = time.perf_counter() - start
    return {"tokens_per_s": sum(counts) / wall, "pages_per_s": len(images) / wall, "wall_s": wall,
            "ttft_p50_s": statistics.median(ttfts), "ttft_p95_s": pct(ttfts, 0.95),
            "latency_p50_s": statistics.median(latencies), "latency_p95_s": pct(latencies, 0.95),
            "generated_tokens": sum(counts)}


async def short_ttft(service: OcrService, image: Any, long_tokens: int, repeats: int = 3) -> dict[str, float]:
    """TTFT of a short request on an idle engine vs while a long generation runs."""
    short = OcrOptions(max_tokens=8, min_tokens=8, ngram_size=NGRAM)

    async def ttft() -> float:
        output = await service.run(image, short)
        return output.ttft_s if output.ttft_s is not None else float("nan")

    idle = [await ttft() for _ in range(repeats)]
    long = asyncio.create_task(service.run(image, OcrOptions(max_tokens=long_tokens, min_tokens=long_tokens,
                                                             ngram_size=NGRAM)))
    await asyncio.sleep(0.5)
    busy = [await ttft() for _ in range(repeats)]
    still_running = not long.done()
    await long
    return {"idle_ttft_s": statistics.median(idle), "busy_ttft_s": statistics.median(busy),
            "busy_over_idle": statistics.median(busy) / statistics.median(idle), "long_was_running": still_running}


def build_service(args: argparse.Namespace, max_batch: int) -> OcrService:
    if args.full_size:
        settings = Settings(device=args.device, max_batch_size=max_batch, max_new_tokens=8192)
        family, device = full_size_family(args.full_size, args.device)
        if str(device).startswith("cuda"):
            experts.probe_and_install(family.model, decode_mask=family.decode_mask)  # as loading does (ocr/runtime.py)
        config = EngineConfig(max_batch_size=max_batch, max_batch_tokens=10**7, max_queue=10**4, request_timeout=3600,
                              max_prefill_batch=args.prefill_batch or 4, prefill_workers=args.prefill_workers or 1)
        engine = Engine(family, device, config=config)
        engine.start()
        return OcrService(settings, family, engine)
    checkpoint = args.checkpoint
    if checkpoint is None:
        from predictor.testing.tiny import build

        checkpoint = build(tempfile.mkdtemp(prefix="bench-tiny-"), args.tiny)
    settings = Settings(model_dir=checkpoint, device=args.device, max_batch_size=max_batch,
                        max_batch_tokens=10**7, max_queue=10**4, request_timeout=3600,
                        max_prefill_batch=args.prefill_batch, prefill_workers=args.prefill_workers)
    return load_runtime(settings).service


async def measure(service: OcrService, images: list[Any], levels: list[int], tokens: int,
                  repeats: int) -> dict[str, Any]:
    """Every level side by side, ``repeats`` times; the run with the median speed-up is reported in full."""
    runs = []
    for _ in range(repeats):
        run: dict[str, Any] = {}
        for level in levels:
            service.engine.stats.take_steps()
            run[f"c{level}"] = await run_level(service, images, level, tokens)
            run[f"c{level}"]["step"] = service.engine.stats.take_steps()
        for level in levels[1:]:
            run[f"speedup_c{level}_over_c{levels[0]}"] = run[f"c{level}"]["tokens_per_s"] / run[f"c{levels[0]}"][
                "tokens_per_s"]
        runs.append(run)
    key = f"speedup_c{levels[-1]}_over_c{levels[0]}" if len(levels) > 1 else None
    ordered = sorted(runs, key=lambda r: r[key]) if key else runs
    result = dict(ordered[len(ordered) // 2])
    if key:
        result[f"{key}_runs"] = [round(r[key], 3) for r in runs]
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    levels = sorted(set(args.concurrency))
    service = build_service(args, max(levels))
    images = pages(args.pages or max(levels), args.page)
    await run_level(service, images[:1], 1, 4)  # warm-up
    prompt = service.family.prepare(images[0], "<image>\nFree OCR.", _image_options()).prompt_tokens
    config = service.engine.config
    result: dict[str, Any] = {"device": args.device, "family": service.family.name,
                              "prefill_batch": config.max_prefill_batch,
                              "prefill_workers": config.prefill_workers, "page": args.page,
                              "page_size": PAGE_SIZES[args.page], "prompt_tokens": prompt, "pages": len(images),
                              "repeats": args.repeats, "omp_threads": os.environ.get("OMP_NUM_THREADS")}
    for tokens in args.tokens:
        result[f"tokens_{tokens}"] = await measure(service, images, levels, tokens, args.repeats)
    if not args.skip_ttft:
        result["short_during_long"] = await short_ttft(service, images[0], args.long_tokens)
    service.engine.stop()
    return result


def _image_options() -> Any:
    from predictor.families.base import ImageOptions

    return ImageOptions()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint directory (default: a freshly built tiny one)")
    parser.add_argument("--tiny", choices=("v1", "v2"), default="v2")
    parser.add_argument("--full-size", choices=("v1", "v2"), help="real architecture, random weights (GPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, nargs="+", default=[512], help="output lengths, each measured apart")
    parser.add_argument("--repeats", type=int, default=1, help="runs per output length (median speed-up reported)")
    parser.add_argument("--page", choices=sorted(PAGE_SIZES), default="screen")
    parser.add_argument("--skip-ttft", action="store_true", help="skip the short-during-long TTFT check")
    parser.add_argument("--pages", type=int, default=0, help="pages per level (default: the largest concurrency)")
    parser.add_argument("--long-tokens", type=int, default=1000)
    parser.add_argument("--prefill-batch", type=int, default=0, help="0 = the server's auto choice")
    parser.add_argument("--prefill-workers", type=int, default=0, help="0 = the server's auto choice")
    args = parser.parse_args()
    if 1 not in args.concurrency:
        args.concurrency = [1, *args.concurrency]
    print(json.dumps(asyncio.run(main_async(args)), default=str))


if __name__ == "__main__":
    main()
