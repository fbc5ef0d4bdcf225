"""``on_repetition: "retry"``: what a page suspected of looping is run again with, and which attempt is kept.

Attempt 2 runs with a stronger repetition guard: n-grams of at most 20 tokens (DeepSeek's PDF setting) over a
1,024-token window, so a loop whose period is longer than the default 90-token window is caught too. If that
still loops, attempt 3 keeps the stronger guard and changes the resolution mode (v1 gundam <-> base, tiny -> small,
small/large -> base; v2 dynamic <-> global). Each attempt has the page's own token cap and shares the request's
deadline. The first attempt not suspected of looping is kept; if all are, the one with the highest confidence.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from predictor.ocr.types import ResolvedOptions

STRONG_NGRAM = (20, 1024)
MAX_EXTRA_ATTEMPTS = 2
OTHER_MODE = {"gundam": "base", "base": "gundam", "large": "base", "small": "base", "tiny": "small",
              "dynamic": "global", "global": "dynamic"}


def stronger(options: ResolvedOptions) -> ResolvedOptions:
    size = min(options.ngram_size, STRONG_NGRAM[0]) if options.ngram_size else STRONG_NGRAM[0]
    return replace(options, ngram_size=size, ngram_window=max(options.ngram_window, STRONG_NGRAM[1], size))


def other_mode(mode: str | None, modes: tuple[str, ...]) -> str | None:
    choice = OTHER_MODE.get(mode or "")
    if choice in modes and choice != mode:
        return choice
    return next((m for m in modes if m != mode), None)


def extra_attempts(options: ResolvedOptions, family: Any) -> list[ResolvedOptions]:
    """The (at most two) options a looping page is retried with, in order."""
    first = stronger(options)
    attempts = [first]
    mode = other_mode(options.image.mode, tuple(family.modes))
    if mode is not None:
        attempts.append(replace(first, image=family.image_options(mode, options.image.max_crops)))
    return attempts[:MAX_EXTRA_ATTEMPTS]


def describe(number: int, options: ResolvedOptions, output: Any) -> dict[str, Any]:
    """One entry of a page's ``attempts``."""
    return {"attempt": number, "mode": options.image.mode, "ngram_size": options.ngram_size,
            "ngram_window": options.ngram_window, "finish_reason": output.finish_reason,
            "completion_tokens": output.completion_tokens, "confidence": output.confidence,
            "repetition_suspected": bool(output.repetition.get("suspected")), "chosen": False}


def best(outputs: list[Any]) -> int:
    """Index of the attempt to return."""
    for i, output in enumerate(outputs):
        if not output.repetition.get("suspected"):
            return i
    return max(range(len(outputs)), key=lambda i: outputs[i].confidence or 0.0)
