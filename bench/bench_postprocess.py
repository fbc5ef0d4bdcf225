"""Post-processing benchmark: one page's raw output -> clean text, blocks, captions and (with ``figures``) JPEG
crops, through ``predictor.ocr.postprocess.finish_page``, the code the server runs after generation. Prints one
JSON line: the median time per page of the grounding parse alone (all the server did before these options), of
the whole step with default options and with ``figures`` (and the Markdown options), and what figures add.

    python bench/bench_postprocess.py                    # a letter page at 144 DPI with 6 figures, 50 runs
    python bench/bench_postprocess.py --figures 12 --dpi 200 --runs 20

The page is photo-like (gradients and noise, which JPEG encodes slower than flat colour), its six figures cover
about half of it, and the text holds math and a table, so the Markdown options run too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from PIL import Image  # noqa: E402

from predictor.ocr import grounding  # noqa: E402
from predictor.ocr.postprocess import finish_page  # noqa: E402

TARGET_MS = 50.0


@dataclass
class Options:
    figures: bool
    math: str = "dollar"
    table_format: str = "markdown"
    raw: bool = False
    labels_are_text: bool = False


def page_image(width: int, height: int) -> Image.Image:
    gradient = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40)
    return Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def raw_page(figures: int) -> str:
    """A DeepSeek-style grounding page: a title, then per figure a text block with math, the image group, its
    caption; a table and an equation at the end. Figures sit in two columns, ~45 % x 12 % of the page each."""
    groups = ["<|ref|>title<|/ref|><|det|>[[100, 20, 900, 45]]<|/det|>\n# A page with figures  \n\n"]
    rows = (figures + 1) // 2
    height = 800 // max(rows, 1)
    for i in range(figures):
        x, y = 50 + 475 * (i % 2), 60 + height * (i // 2)
        groups.append(f"<|ref|>text<|/ref|><|det|>[[{x}, {y}, {x + 425}, {y + 20}]]<|/det|>\n"
                      f"Figure {i} shows \\(x_{i} \\coloneqq {i}\\) over time.  \n\n")
        groups.append(f"<|ref|>image<|/ref|><|det|>[[{x}, {y + 25}, {x + 425}, {y + height - 40}]]<|/det|>\n")
        groups.append(f"<|ref|>image_caption<|/ref|><|det|>[[{x}, {y + height - 35}, {x + 425}, {y + height - 20}]]"
                      f"<|/det|>\n<center>Figure {i} | A caption.</center>  \n\n")
    groups.append("<|ref|>table<|/ref|><|det|>[[100, 880, 900, 940]]<|/det|>\n<table><tr><td>a</td><td>b</td></tr>"
                  "<tr><td>1</td><td>2</td></tr></table>  \n\n")
    groups.append("<|ref|>equation<|/ref|><|det|>[[300, 950, 700, 990]]<|/det|>\n\\[ E \\eqqcolon m c^2 \\]")
    return "".join(groups)


def median_ms(raw: str, image: Image.Image, options: Options | None, runs: int) -> tuple[float, int]:
    """``options`` None: the grounding parse alone."""
    times, crops = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        if options is None:
            grounding.parse(raw, image.width, image.height)
        else:
            crops = len(finish_page(raw, image, options).figures)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=int, default=6)
    parser.add_argument("--dpi", type=int, default=144)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    image = page_image(round(8.5 * args.dpi), round(11 * args.dpi))
    raw = raw_page(args.figures)
    finish_page(raw, image, Options(True))  # warm-up: imports, JPEG encoder
    parse, _ = median_ms(raw, image, None, args.runs)
    default, _ = median_ms(raw, image, Options(False, "latex", "html"), args.runs)
    off, _ = median_ms(raw, image, Options(False), args.runs)
    on, crops = median_ms(raw, image, Options(True), args.runs)
    print(json.dumps({"page": f"{image.width}x{image.height}", "figures": crops, "runs": args.runs,
                      "median_ms_parse_only": round(parse, 3), "median_ms_default_options": round(default, 3),
                      "median_ms_figures_off": round(off, 2), "median_ms_figures_on": round(on, 2),
                      "figures_add_ms": round(on - off, 2), "target_ms": TARGET_MS, "met": on < TARGET_MS}))


if __name__ == "__main__":
    main()
