"""What a caller needs to decide whether to trust a page: confidences, loop evidence and token log-probabilities,
computed from one generation (see ``confidence`` and ``repetition`` for the definitions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from predictor.engine.types import GenerationResult
from predictor.ocr import confidence, repetition
from predictor.ocr.tokens import TokenTexts
from predictor.ocr.types import ResolvedOptions


@dataclass
class PageTrust:
    confidence: float | None
    min_confidence: float | None
    repetition: dict[str, Any]
    blocks: list[dict[str, Any]] = field(default_factory=list)  # per block with boxes, in parse order
    logprobs: list[dict[str, Any]] | None = None  # OpenAI token entries, when asked


def page_trust(result: GenerationResult, options: ResolvedOptions, texts: TokenTexts, blocks: int) -> PageTrust:
    """``blocks``: how many blocks ``grounding.parse`` found (token spans are only worked out when needed)."""
    mean, low = confidence.summary(result.logprobs)
    trust = PageTrust(mean, low, repetition.assess(result.text, result.finish_reason, result.ban_steps,
                                                   len(result.token_ids), options.ngram_size))
    if not blocks and not options.logprobs:
        return trust
    spans = texts.spans(result.token_ids, result.text)
    layout = confidence.layout(result.text)
    if blocks:
        trust.blocks = confidence.block_confidences(result.text, spans, result.logprobs, layout)
    if options.logprobs:
        keep = confidence.kept_tokens(spans, len(result.text), None if options.raw else layout,
                                      options.labels_are_text)
        trust.logprobs = confidence.logprob_entries(result.token_ids, spans, result.logprobs, result.top_logprobs,
                                                    keep, texts)
    return trust


def merged_confidence(pages: list[Any]) -> tuple[float | None, float | None]:
    """Token-weighted mean and lowest confidence over pages (``OcrOutput``s)."""
    scored = [(p.confidence, p.min_confidence, p.scored_tokens) for p in pages if p.confidence is not None]
    tokens = sum(n for _, _, n in scored)
    if not scored or not tokens:
        return None, None
    return (round(sum(c * n for c, _, n in scored) / tokens, 4),
            min(low for _, low, _ in scored if low is not None))


def merged_repetition(pages: list[Any]) -> dict[str, Any]:
    looped = [n for n, p in enumerate(pages, 1) if p.repetition.get("suspected")]
    return {"suspected": bool(looped), "reason": "pages" if looped else None, "pages": looped}
