"""What trust costs: tokens/s without confidence, with it (always on in the server), and with ``logprobs`` and
``top_logprobs: 5``, side by side in one run at concurrency 1 and C. Prints one JSON line.

    python bench/bench_trust.py                            # tiny DeepSeek-OCR-2, CPU, 256 tokens, c=1 and c=8
    python bench/bench_trust.py --tokens 512 --repeats 5
    python bench/bench_trust.py --checkpoint /mnt/models --device cuda

"without confidence" is the same server with the chosen tokens' log-probability replaced by a constant (no
``logsumexp``/``gather`` per step) and no page/block confidence or loop verdict computed at the end of a page:
what the server did before confidence existed. The three variants run interleaved, in a rotating order, each
repeat; the median over repeats is reported with every run's figure, end to end (``tokens_per_s``: prefill
included) and for decoding alone (``decode_tokens_per_s``: rows per decode step over the step's time, from the
engine's step timer). Ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

from bench.bench_batching import NGRAM, build_service, pages, run_level  # noqa: E402
from predictor.engine import sampler  # noqa: E402
from predictor.ocr import trust  # noqa: E402
from predictor.ocr.options import OcrOptions  # noqa: E402

VARIANTS = ("without_confidence", "confidence", "logprobs_top5")


def _choose_without_logprobs(logits: torch.Tensor, samplers: list[Any], generated: list[list[int]]) -> Any:
    """The sampler as it was before log-probabilities (greedy rows; the bench only runs greedy)."""
    rows, vocab = logits.shape
    flat: list[int] = []
    for i, (row, ids) in enumerate(zip(samplers, generated, strict=True)):
        flat.extend(i * vocab + t for t in row.banned(ids))
    if flat:
        logits.view(-1).index_fill_(0, sampler._upload(flat, logits.device), float("-inf"))
    tokens = logits.argmax(dim=-1)
    zeros = torch.zeros(rows, device=logits.device)
    return sampler.Choice(tokens, torch.isnan(logits).any(dim=-1), zeros, zeros)


def _no_trust(result: Any, options: Any, texts: Any, blocks: int) -> trust.PageTrust:
    return trust.PageTrust(None, None, {"suspected": False, "reason": None, "span": None})


@contextlib.contextmanager
def confidence_off() -> Iterator[None]:
    choose, page_trust = sampler.choose, trust.page_trust
    sampler.choose, trust.page_trust = _choose_without_logprobs, _no_trust
    try:
        yield
    finally:
        sampler.choose, trust.page_trust = choose, page_trust


def options(variant: str, tokens: int) -> OcrOptions:
    extra = {"logprobs": True, "top_logprobs": 5} if variant == "logprobs_top5" else {}
    return OcrOptions(max_tokens=tokens, min_tokens=tokens, ngram_size=NGRAM, **extra)


async def one_run(service: Any, images: list[Any], variant: str, level: int, tokens: int) -> tuple[float, float]:
    """(end-to-end tokens/s, decode tokens/s from the engine's step timer: prefill excluded)."""
    context = confidence_off() if variant == "without_confidence" else contextlib.nullcontext()
    timer = service.engine.worker.timer
    timer.take()
    with context:
        result = await run_level(service, images[:level], level, tokens, options(variant, tokens))
    step = timer.take()
    step_ms = step["host_ms"] + step["sync_ms"] + step["device_ms"]
    return result["tokens_per_s"], step["mean_rows"] * 1e3 / step_ms


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    levels = sorted(set(args.concurrency))
    service = build_service(args, max(levels))
    images = pages(max(levels))
    await run_level(service, images[:1], 1, 4)  # warm-up
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {f"c{c}": {v: [] for v in VARIANTS} for c in levels}
    for repeat in range(args.repeats):
        for level in levels:
            order = VARIANTS[repeat % 3:] + VARIANTS[:repeat % 3]
            for variant in order:
                runs[f"c{level}"][variant].append(await one_run(service, images, variant, level, args.tokens))
    service.engine.stop()
    result: dict[str, Any] = {"device": str(service.engine.worker.device), "family": service.family.name,
                              "tokens": args.tokens, "repeats": args.repeats,
                              "omp_threads": os.environ.get("OMP_NUM_THREADS")}
    for level, by_variant in runs.items():
        result[level] = {}
        for index, metric in enumerate(("tokens_per_s", "decode_tokens_per_s")):
            median = {v: statistics.median(run[index] for run in values) for v, values in by_variant.items()}
            base = median["without_confidence"]
            result[level][metric] = {
                **{v: round(m, 2) for v, m in median.items()},
                "runs": {v: [round(run[index], 2) for run in values] for v, values in by_variant.items()},
                "confidence_cost_pct": round(100 * (1 - median["confidence"] / base), 2),
                "logprobs_top5_cost_pct": round(100 * (1 - median["logprobs_top5"] / base), 2),
            }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint directory (default: a freshly built tiny one)")
    parser.add_argument("--tiny", choices=("v1", "v2"), default="v2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.full_size, args.prefill_batch, args.prefill_workers = None, 0, 0
    print(json.dumps(asyncio.run(main_async(args)), default=str))


if __name__ == "__main__":
    main()
