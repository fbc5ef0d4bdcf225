"""Tiny DeepSeek-OCR-2 checkpoints *fitted* on CPU so that greedy decoding emits one chosen text for any image.

Tests of everything after the model (grounding parsing, figures, confidence, repetition flags, the playground) need
real-looking output from the real serving path, without real weights. A tiny checkpoint of the real architecture
(``predictor.testing.tiny``) is trained on one fixed target: the vision encoders stay frozen and random, the
projector's weight is zeroed (so no image, however unusual, can move the output: every image placeholder gets the
projector's bias, the last one the view separator), and the projector bias, separator, embeddings, decoder and
``lm_head`` are trained with teacher forcing on ``<image>``-layout + prompt + target. The layouts (how many
placeholders precede the prompt) come from the family's real processor run on random images, one per training
layout; the fit then checks every layout a request can produce (0 to 6 local tiles) with every prompt of
``FIT_PROMPTS`` and stops only when each target token is the argmax by at least ``MARGIN`` logits everywhere (a
failing combination joins the training set). Greedy decoding through the server then reproduces the target
exactly, for any image and any of those prompts. The saved directory is a normal ``--model_dir``.

    python -m predictor.testing.fitted --target grounding --family v2 OUT_DIR

Targets (``TARGETS``; any other string is fitted as raw text ending with EOS):

- ``grounding``: one markdown grounding page in DeepSeek's format (title, text with inline math, image and its
  caption just below it, table, equation), 306 tokens + EOS.
- ``loop``: a header, then one line repeated (13 distinct tokens, so each token alone says what comes next),
  282 tokens without EOS. With the n-gram guard off (``ngram_size=0``) greedy decoding repeats the line exactly
  far past the trained length (measured: 1000 tokens, 76 lines, ``finish_reason == "length"``).
  What the repetition guard does to it: it bans the loop's next token as soon as a 30-gram would repeat (default
  30/90: generated token index 50, the period starting at the header's last newline: 8 + 13 + 29; PDF 20/50:
  index 40), greedy decoding takes another token
  there, and the model falls straight back into the line. The guard nicks the loop but does not end it: the
  output is still near-identical lines up to the token cap (``length``), e.g. every third line becomes
  ``- Minutes`` or ``- The quick brown`` (measured, 400 tokens, both settings).
- ``normal``: a dense table page (12 distinct rows) ending with EOS, 281 tokens: no n-gram of either guard
  setting ever repeats in it, so the guard never touches it: a long page that must not be called a loop.

Fit time, measured on the shared 2-core machine (torch single-threaded; CPU seconds / wall seconds at a load
average of ~11): grounding 105 steps, 12 s / 46 s; loop 80 steps, 10 s / 40 s; normal 211 steps, 23 s / 158 s.
Each fit writes its steps, smallest margin and times to ``fitted.json``. Deterministic: fixed seeds and one
thread give the same weights for the same target (same fingerprint, steps and margin across runs).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

FIT_PROMPTS = (
    "<|grounding|>Convert the document to markdown.",
    "Free OCR.",
    "<|grounding|>OCR this image.",
)
# Only the first and the last tile counts are trained at first; the others must follow (they are checked).
TRAIN_CROPS = (0, 6)
CHECK_CROPS = (0, 1, 2, 3, 4, 5, 6)
MARGIN = 3.0
MAX_STEPS = 1500
# Measured on the grounding target: width 96 at 2e-3 fits in half the steps of the plain tiny width 64 at 5e-3;
# 96 at 5e-3 was unstable.
TEXT_WIDTH = 96
LEARNING_RATE = 2e-3
SEED = 0
MARKER = "fitted.json"
FIT_VERSION = 1

log = logging.getLogger(__name__)


def _normal_page() -> str:
    items = ["Apples", "Bread", "Cheese", "Dates", "Eggs", "Flour", "Grapes", "Honey", "Ink", "Jam", "Kale",
             "Lemons"]
    rows = "".join(f"<tr><td>{name}</td><td>{i + 2}</td><td>{(i * 37) % 90 + 10}.{i % 10}0</td></tr>"
                   for i, name in enumerate(items))
    return ("<|ref|>table<|/ref|><|det|>[[80, 90, 920, 910]]<|/det|>\n"
            f"<table><tr><td>Item</td><td>Qty</td><td>Price</td></tr>{rows}</table>")


TARGETS: dict[str, str] = {
    "grounding": (
        "<|ref|>title<|/ref|><|det|>[[112, 64, 887, 118]]<|/det|>\n# Fitted Page  \n\n"
        "<|ref|>text<|/ref|><|det|>[[112, 140, 887, 210]]<|/det|>\nThe energy is \\( E = mc^2 \\).  \n\n"
        "<|ref|>image<|/ref|><|det|>[[200, 240, 800, 520]]<|/det|>\n"
        "<|ref|>image_caption<|/ref|><|det|>[[260, 532, 740, 560]]<|/det|>\n"
        "<center>Figure 1 | A plot.</center>  \n\n"
        "<|ref|>table<|/ref|><|det|>[[150, 600, 850, 760]]<|/det|>\n"
        "<table><tr><td>a</td><td>b</td></tr><tr><td>1</td><td>2</td></tr></table>  \n\n"
        "<|ref|>equation<|/ref|><|det|>[[300, 800, 700, 860]]<|/det|>\n\\[ x^2 + y^2 = 1 \\]"
    ),
    "loop": "# Minutes\n\n" + "- The quick brown fox jumps over the lazy dog.\n" * 21,
    "normal": _normal_page(),
}
# Targets that end without EOS: the model is taught to go on.
OPEN_ENDED = frozenset({"loop"})


def target_text(target: str) -> str:
    """The text of a named target; any other string is taken as the raw target text."""
    return TARGETS.get(target, target)


def _fingerprint(text: str, family: str, open_ended: bool) -> str:
    payload = json.dumps([FIT_VERSION, family, text, open_ended, FIT_PROMPTS, MARGIN, SEED, TEXT_WIDTH, LEARNING_RATE,
                          TRAIN_CROPS, CHECK_CROPS])
    return hashlib.sha256(payload.encode()).hexdigest()


def _finished(out_dir: str, fingerprint: str) -> bool:
    try:
        with open(os.path.join(out_dir, MARKER), encoding="utf-8") as f:
            return json.load(f).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def build_fitted(out_dir: str, target: str = "grounding", family: str = "v2") -> str:
    """Fit a tiny checkpoint to ``target`` (a name in ``TARGETS`` or raw text) and save it in ``out_dir``.

    Returns ``out_dir`` at once when it already holds a finished fit of the same target and family."""
    if family != "v2":
        raise ValueError(f"fitted checkpoints exist for family v2 only, not {family!r}")
    text = target_text(target)
    open_ended = target in OPEN_ENDED
    fingerprint = _fingerprint(text, family, open_ended)
    if _finished(out_dir, fingerprint):
        return out_dir
    os.makedirs(out_dir, exist_ok=True)
    with _single_thread():
        report = _fit_v2(out_dir, text, open_ended)
    report.update({"fingerprint": fingerprint, "family": family, "target": target if target in TARGETS else None})
    # Written last: a directory without it (a fit that died half way) is fitted again.
    with open(os.path.join(out_dir, MARKER), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    log.info("fitted %s (%s) in %s: %s", target if target in TARGETS else "raw text", family, out_dir, report)
    return out_dir


def cached_fitted(target: str = "grounding", family: str = "v2", cache_dir: str | None = None) -> str:
    """A finished fit from a cache shared by test sessions (``PREDICTOR_FITTED_CACHE``, else
    ``~/.cache/predictor/fitted``), keyed by the target, the family and the sources that shape the weights.
    Built in a temporary directory and renamed into place, so concurrent sessions never see half a fit."""
    root = cache_dir or os.environ.get("PREDICTOR_FITTED_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "predictor", "fitted")
    key = _source_key(target_text(target), family)
    final = os.path.join(root, f"{family}-{target if target in TARGETS else 'text'}-{key[:16]}")
    if os.path.isfile(os.path.join(final, MARKER)):
        return final
    os.makedirs(root, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".fitting-", dir=root)
    try:
        build_fitted(work, target, family)
        try:
            os.rename(work, final)
        except OSError:
            if not os.path.isfile(os.path.join(final, MARKER)):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _source_key(text: str, family: str) -> str:
    """Whatever changes the fitted weights: this module, the tiny builders, the tokenizer, library versions."""
    import torch
    import transformers

    from predictor.testing import tiny, tokenizer

    digest = hashlib.sha256()
    for module in (tiny, tokenizer):
        with open(module.__file__, "rb") as f:
            digest.update(f.read())
    with open(__file__, "rb") as f:
        digest.update(f.read())
    digest.update(f"{torch.__version__} {transformers.__version__} {family}\0{text}".encode())
    return digest.hexdigest()


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine the default pool thrashes (measured ~20x slower), and one
    thread makes the float sums, hence the fit, reproducible."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(eq=False)  # compared by identity: the training set holds the very samples that were checked
class _Sample:
    input_ids: Any  # 1-D LongTensor: BOS, placeholders, prompt, target
    prompt_len: int  # tokens before the first target token
    start: int  # index of the first placeholder
    placeholders: int
    name: str


def _layout_ids(processor: Any, crops: int, rng: random.Random) -> tuple[list[int], int, int]:
    """The real processor's ids for a random image whose size gives ``crops`` local tiles (first prompt)."""
    import numpy as np
    from PIL import Image

    from predictor.families.base import ImageOptions
    from predictor.families.v2.family import DeepseekOcr2Family

    size = _size_for(crops)
    pixels = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    family = DeepseekOcr2Family()
    family.processor = processor
    prepared = family.prepare(Image.fromarray(pixels), f"<image>\n{FIT_PROMPTS[0]}",
                              ImageOptions(max_crops=max(crops, 1)))
    ids = prepared.inputs["input_ids"][0].tolist()
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    start = ids.index(image_id)
    count = ids.count(image_id)
    if count != prepared.image_tokens:
        raise RuntimeError(f"processor gave {count} placeholders, the family counts {prepared.image_tokens}")
    return ids, start, count


def _size_for(crops: int) -> tuple[int, int]:
    """A small image size whose tiling (with max_crops = crops) has exactly ``crops`` tiles."""
    sizes = {0: (640, 480), 1: (1000, 900), 2: (1536, 768), 3: (2304, 768), 4: (1536, 1536), 5: (3840, 768),
             6: (2304, 1536)}
    return sizes[crops]


def _samples(processor: Any, target_ids: list[int], crops: tuple[int, ...], rng: random.Random) -> list[_Sample]:
    """One sample per (tile count, prompt): the processor's real layout, its prompt swapped for each of
    ``FIT_PROMPTS`` (the ids after the prompt's ``\\n`` are the prompt's own tokens)."""
    import torch

    tokenizer = processor.tokenizer
    prompt_ids = [tokenizer(f"\n{p}", add_special_tokens=False)["input_ids"] for p in FIT_PROMPTS]
    samples = []
    for k in crops:
        ids, start, count = _layout_ids(processor, k, rng)
        head = ids[:start + count]
        if ids[start + count:] != prompt_ids[0]:
            raise RuntimeError("the processor's prompt tokens differ from the tokenizer's")
        for prompt, tail in zip(FIT_PROMPTS, prompt_ids, strict=True):
            full = head + tail
            samples.append(_Sample(torch.tensor(full + target_ids), len(full), start, count,
                                   f"{k} tiles, {prompt!r}"))
    return samples


def _logits(model: Any, sample: _Sample) -> Any:
    """Logits at the target positions. Equals the real forward with pixels: the zeroed projector maps every
    vision feature to its bias, and the last placeholder of an image is the view separator."""
    import torch

    inner = model.model
    embeds = inner.language_model.embed_tokens(sample.input_ids[None])
    image = torch.cat([inner.multi_modal_projector.bias[None].expand(sample.placeholders - 1, -1),
                       inner.view_separator[None]])
    end = sample.start + sample.placeholders
    embeds = torch.cat([embeds[:, :sample.start], image[None], embeds[:, end:]], dim=1)
    hidden = inner.language_model(inputs_embeds=embeds, use_cache=False).last_hidden_state
    return model.lm_head(hidden[0, sample.prompt_len - 1:-1])


def _margin(logits: Any, target: Any) -> float:
    """Smallest (target logit - best other logit) over the target positions."""
    chosen = logits.gather(1, target[:, None])[:, 0]
    others = logits.scatter(1, target[:, None], float("-inf")).max(dim=1).values
    return float((chosen - others).min())


def _prepare_model(config: Any) -> tuple[Any, list[Any]]:
    import torch

    from predictor.testing.tiny import v2_model

    model = v2_model(config)
    inner = model.model
    with torch.no_grad():
        inner.multi_modal_projector.weight.zero_()
    for param in inner.vision_tower.parameters():
        param.requires_grad_(False)
    inner.multi_modal_projector.weight.requires_grad_(False)
    model.train()
    return model, [p for p in model.parameters() if p.requires_grad]


def _train(model: Any, params: list[Any], train: list[_Sample], check: list[_Sample], target: Any,
           rng: random.Random) -> dict[str, Any]:
    """Adam on the cross-entropy of the target tokens, one sample per step, until every sample of ``check``
    clears ``MARGIN``; a checked sample that does not is added to the training set."""
    import torch

    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE, betas=(0.9, 0.98))
    recent: dict[str, float] = {}
    for step in range(1, MAX_STEPS + 1):
        sample = train[rng.randrange(len(train))]
        logits = _logits(model, sample)
        loss = torch.nn.functional.cross_entropy(logits, target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        recent[sample.name] = _margin(logits.detach(), target)
        if len(recent) < len(train) or min(recent.values()) < MARGIN:
            continue
        margins = _check(model, check, target)
        failing = [s for s, m in zip(check, margins, strict=True) if m < MARGIN]
        if not failing:
            return {"steps": step, "min_margin": round(min(margins), 3)}
        train.extend(s for s in failing if s not in train)
        recent.clear()
    raise RuntimeError(f"the fit did not reach a margin of {MARGIN} in {MAX_STEPS} steps")


def _check(model: Any, samples: list[_Sample], target: Any) -> list[float]:
    import torch

    model.eval()
    with torch.no_grad():
        margins = [_margin(_logits(model, s), target) for s in samples]
    model.train()
    return margins


def _fit_v2(out_dir: str, text: str, open_ended: bool) -> dict[str, Any]:
    import torch
    from transformers import DeepseekOcr2ImageProcessorPil, DeepseekOcr2Processor

    from predictor.testing.tiny import save_v2, v2_config
    from predictor.testing.tokenizer import build_tokenizer

    started, cpu_started = time.monotonic(), time.process_time()
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    tokenizer = build_tokenizer()
    processor = DeepseekOcr2Processor(image_processor=DeepseekOcr2ImageProcessorPil(), tokenizer=tokenizer)
    target_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not open_ended:
        target_ids.append(tokenizer.eos_token_id)
    config = v2_config(tokenizer, hidden_size=TEXT_WIDTH, intermediate_size=2 * TEXT_WIDTH,
                       moe_intermediate_size=TEXT_WIDTH // 2)
    model, params = _prepare_model(config)
    check = _samples(processor, target_ids, CHECK_CROPS, rng)
    train = [s for s in check if int(s.name.split()[0]) in TRAIN_CROPS]
    report = _train(model, params, train, check, torch.tensor(target_ids), rng)
    model.eval()
    save_v2(model, tokenizer, out_dir)
    report.update({"target_tokens": len(target_ids), "fit_seconds": round(time.monotonic() - started, 1),
                   "fit_cpu_seconds": round(time.process_time() - cpu_started, 1)})
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="grounding", help=f"one of {', '.join(TARGETS)}, or raw text")
    parser.add_argument("--family", choices=("v2",), default="v2")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(build_fitted(args.out_dir, args.target, args.family))


if __name__ == "__main__":
    main()
