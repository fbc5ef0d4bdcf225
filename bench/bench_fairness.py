"""Head-of-line benchmark (issue 24): a short request sent 1 s after a 32-page PDF, against each alone, side by
side in one run, over the OpenAI route of the in-process app (the server's own factory, tiny checkpoint, CPU).
Prints one JSON line.

    python bench/bench_fairness.py                  # what `make bench-fairness` runs
    python bench/bench_fairness.py --repeats 3 --pages 32 --short-tokens 50

The PDF asks for ``max_tokens: 1`` (its cost is rendering and prefilling its pages), the short request for 50
tokens of one PNG (``min_tokens`` = ``max_tokens``, so its length does not depend on the random weights). Targets
(docs/ARCHITECTURE.md, "Scheduling"): the short request behind the PDF within 3x its time alone, the PDF with the
short request within +20 % of its time alone. Absolute times on a shared CPU are noisy: the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import httpx  # noqa: E402

from bench.bench_batching import pages  # noqa: E402

MODEL = "deepseek-ocr"


def pdf_url(n: int) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for _ in range(n):
        pdf.new_page(612, 792)  # US letter, blank: a few KB for the whole document
    buf = io.BytesIO()
    pdf.save(buf)
    return "data:application/pdf;base64," + base64.b64encode(buf.getvalue()).decode()


def png_url() -> str:
    buf = io.BytesIO()
    pages(1)[0].save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def chat(url: str, tokens: int, exact: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": tokens, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    if exact:
        body["min_tokens"] = tokens
    return body


async def timed(client: httpx.AsyncClient, body: dict[str, Any], delay: float = 0.0) -> float:
    await asyncio.sleep(delay)
    start = time.perf_counter()
    response = await client.post("/v1/chat/completions", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return time.perf_counter() - start


async def scenario(client: httpx.AsyncClient, pdf: dict[str, Any], short: dict[str, Any],
                   delay: float) -> dict[str, float]:
    short_alone = statistics.median([await timed(client, short) for _ in range(3)])
    pdf_alone = await timed(client, pdf)
    pdf_with, short_behind = await asyncio.gather(timed(client, pdf), timed(client, short, delay))
    return {"short_alone_s": short_alone, "short_behind_pdf_s": short_behind,
            "short_ratio": short_behind / short_alone, "pdf_alone_s": pdf_alone, "pdf_with_short_s": pdf_with,
            "pdf_ratio": pdf_with / pdf_alone}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from predictor.app import build_app
    from predictor.config import Settings
    from predictor.testing.tiny import build

    checkpoint = args.checkpoint or build(tempfile.mkdtemp(prefix="bench-fairness-"), "v2")
    app = build_app(Settings(model_dir=checkpoint, device=args.device, max_body_bytes=64 * 1024 * 1024))
    model = app.state.model
    await asyncio.to_thread(model.load)
    pdf, short = chat(pdf_url(args.pages), 1, exact=False), chat(png_url(), args.short_tokens, exact=True)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=3600) as client:
            await timed(client, chat(png_url(), 2, exact=True))  # warm-up
            runs = [await scenario(client, pdf, short, args.delay) for _ in range(args.repeats)]
    finally:
        await asyncio.to_thread(model.stop_engine)
    result: dict[str, Any] = dict(sorted(runs, key=lambda r: r["short_ratio"])[len(runs) // 2])
    result.update(pages=args.pages, short_tokens=args.short_tokens, delay_s=args.delay, repeats=args.repeats,
                  short_ratio_runs=[round(r["short_ratio"], 2) for r in runs],
                  pdf_ratio_runs=[round(r["pdf_ratio"], 3) for r in runs],
                  targets={"short_ratio": 3.0, "pdf_ratio": 1.2},
                  load_average=[round(x, 2) for x in os.getloadavg()], cpus=os.cpu_count())
    result["meets_targets"] = result["short_ratio"] <= 3.0 and result["pdf_ratio"] <= 1.2
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint directory (default: a freshly built tiny DeepSeek-OCR-2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pages", type=int, default=32)
    parser.add_argument("--short-tokens", type=int, default=50)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds between the PDF and the short request")
    parser.add_argument("--repeats", type=int, default=1, help="scenarios run (the median short ratio reported)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
