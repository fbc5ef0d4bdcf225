"""What trust costs: tokens/s without confidence, with it (always on in the server), and with ``logprobs`` and
``top_logprobs: 5``, side by side in one run at concurrency 1 and C. Prints one JSON line.

    python bench/bench_trust.py                            # tiny DeepSeek-OCR-2, CPU, 256 tokens, c=1 and c=8
    python bench/bench_trust.py --tokens 512 --repeats 5
    python bench/bench_trust.py --checkpoint /mnt/models --device cuda

"without confidence" is the same server with the chosen tokens' log-probability replaced by a constant (no
``logsumexp``/``gather`` per step) and no page/block confidence or loop verdict computed at the end of a page:
what the server did before confidence existed. The three variants run interleaved, in a rotating order, each
repeat; the median and the best over repeats are reported with every run's figure, end to end (``tokens_per_s``: prefill
included) and for decoding alone (``decode_tokens_per_s``: rows per decode step over the step's time, from the
engine's step timer). On a shared CPU these swing by tens of percent from run to run, so the code that differs
between the variants (the step's token choice and host read) is also timed alone, interleaved, taking the fastest
of several rounds, at the model's vocabulary and at DeepSeek-OCR's (129,280): its extra microseconds per step,
and their share of the fastest decode step measured above, are the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

from bench.bench_batching import NGRAM, build_service, pages, run_level  # noqa: E402
from predictor.engine import sampler  # noqa: E402
from predictor.engine.types import SamplingParams  # noqa: E402
from predictor.ocr import trust  # noqa: E402
from predictor.ocr.options import OcrOptions  # noqa: E402

VARIANTS = ("without_confidence", "confidence", "logprobs_top5")
REAL_VOCAB = 129_280  # DeepSeek-OCR's vocabulary


def _choose_without_logprobs(logits: torch.Tensor, samplers: list[Any], generated: list[list[int]]) -> Any:
    """The sampler as it was before log-probabilities (greedy rows; the bench only runs greedy)."""
    rows = logits.shape[0]
    sampler.apply_bans(logits, samplers, generated)
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


def _sampler_call_us(variant: str, rows: int, vocab: int, iters: int, device: str) -> float:
    """Mean microseconds of one step's token choice and host read for ``variant`` (the code that differs)."""
    k = 5 if variant == "logprobs_top5" else 0
    params = SamplingParams(max_new_tokens=8, ngram_size=NGRAM, top_logprobs=k)
    samplers = [sampler.RowSampler(params, 0, frozenset(), device) for _ in range(rows)]
    generated = [list(range(200)) for _ in range(rows)]
    logits = torch.randn(rows, vocab, device=device)
    choose = _choose_without_logprobs if variant == "without_confidence" else sampler.choose
    start = time.perf_counter()
    for _ in range(iters):  # to_host() reads back: each call waits for its kernels
        choose(logits.clone(), samplers, generated).to_host([k] * rows)
    return (time.perf_counter() - start) / iters * 1e6


def sampler_overhead(levels: list[int], vocab: int, device: str, rounds: int = 7,
                     iters: int = 200) -> dict[str, Any]:
    """Per step: the minimum over interleaved rounds (the least disturbed by other work on the machine)."""
    result: dict[str, Any] = {}
    for rows in levels:
        best = {v: min(_sampler_call_us(v, rows, vocab, iters, device) for _ in range(rounds)) for v in VARIANTS}
        result[f"c{rows}"] = {f"{v}_us": round(us, 1) for v, us in best.items()}
        result[f"c{rows}"]["confidence_extra_us"] = round(best["confidence"] - best["without_confidence"], 1)
        result[f"c{rows}"]["logprobs_top5_extra_us"] = round(best["logprobs_top5"] - best["without_confidence"], 1)
    return result


def options(variant: str, tokens: int) -> OcrOptions:
    extra = {"logprobs": True, "top_logprobs": 5} if variant == "logprobs_top5" else {}
    return OcrOptions(max_tokens=tokens, min_tokens=tokens, ngram_size=NGRAM, **extra)


async def one_run(service: Any, images: list[Any], variant: str, level: int, tokens: int) -> tuple[float, float]:
    """(end-to-end tokens/s, decode tokens/s from the engine's step timer: prefill excluded)."""
    context = confidence_off() if variant == "without_confidence" else contextlib.nullcontext()
    service.engine.stats.take_steps()
    with context:
        result = await run_level(service, images[:level], level, tokens, options(variant, tokens))
    step = service.engine.stats.take_steps()
    step_ms = step["host_ms"] + step["sync_ms"] + step["device_ms"]
    return result["tokens_per_s"], step["mean_rows"] * 1e3 / step_ms, step_ms


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    levels = sorted(set(args.concurrency))
    service = build_service(args, max(levels))
    images = pages(max(levels))
    await run_level(service, images[:1], 1, 4)  # warm-up
    runs: dict[str, dict[str, list[tuple[float, float, float]]]] = {f"c{c}": {v: [] for v in VARIANTS}
                                                                     for c in levels}
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
            best = {v: max(run[index] for run in values) for v, values in by_variant.items()}
            result[level][metric] = {
                **{v: round(m, 2) for v, m in median.items()},
                "best": {v: round(b, 2) for v, b in best.items()},
                "best_confidence_cost_pct": round(100 * (1 - best["confidence"] / best["without_confidence"]), 2),
                "best_logprobs_top5_cost_pct": round(100 * (1 - best["logprobs_top5"] / best["without_confidence"]),
                                                     2),
                "runs": {v: [round(run[index], 2) for run in values] for v, values in by_variant.items()},
                "confidence_cost_pct": round(100 * (1 - median["confidence"] / base), 2),
                "logprobs_top5_cost_pct": round(100 * (1 - median["logprobs_top5"] / base), 2),
            }
        step_ms = min(run[2] for run in by_variant["without_confidence"])
        result[level]["fastest_step_ms"] = round(step_ms, 3)
    vocab = int(service.family.model.config.get_text_config().vocab_size)
    for name, size in (("sampler_model_vocab", vocab), ("sampler_real_vocab", REAL_VOCAB)):
        overhead = sampler_overhead(levels, size, args.device)
        for level in levels:
            key = f"c{level}"
            if name == "sampler_model_vocab" and key in result:
                step_us = 1e3 * result[key]["fastest_step_ms"]
                for what in ("confidence", "logprobs_top5"):
                    overhead[key][f"{what}_pct_of_step"] = round(100 * overhead[key][f"{what}_extra_us"] / step_us,
                                                                 2)
        result[name] = {"vocab": size, **overhead}
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
