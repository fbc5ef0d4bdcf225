"""Token spans, block confidences, the tokens a caller receives, and the loop rule on recorded-style outputs."""

from __future__ import annotations

import math
import re

import pytest

from predictor.ocr import confidence, repetition
from predictor.ocr.grounding import parse
from predictor.ocr.tokens import TokenTexts
from predictor.testing.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def texts() -> TokenTexts:
    return TokenTexts(build_tokenizer())


GROUNDED = ("<|ref|>title<|/ref|><|det|>[[10, 20, 300, 60]]<|/det|>\n# Annual report\n\n"
            "<|ref|>text<|/ref|><|det|>[[10, 80, 900, 400]]<|/det|>\nRevenue grew 12 % to 1,234.56 EUR. Ünïcødé €\n")


def _encode(texts: TokenTexts, raw: str) -> list[int]:
    return texts.tokenizer(raw, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("raw", [GROUNDED, "plain ascii", "multi-byte: é € 😀 中文", ""])
def test_token_spans_cover_the_decoded_text_exactly(texts, raw):
    ids = _encode(texts, raw)
    decoded = texts.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert decoded == raw
    assert texts.byte_level
    assert b"".join(texts.piece(i) for i in ids) == raw.encode("utf-8")
    spans = texts.spans(ids, decoded)
    assert len(spans) == len(ids)
    assert spans == sorted(spans) and (not spans or (spans[0][0] == 0 and spans[-1][1] == len(raw)))
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start <= end  # contiguous (a character split over two tokens belongs to both)


def test_spans_stop_at_a_text_cut_by_a_stop_string(texts):
    ids = _encode(texts, "keep this STOP and not this")
    spans = texts.spans(ids, "keep this ")
    keep = confidence.kept_tokens(spans, len("keep this "), None, False)
    kept_text = "".join(texts.text(i) for i, k in zip(ids, keep, strict=True) if k)
    assert kept_text.startswith("keep this") and "not" not in kept_text


def test_block_confidence_is_the_mean_probability_of_its_content_tokens(texts):
    ids = _encode(texts, GROUNDED)
    spans = texts.spans(ids, GROUNDED)
    layout = confidence.layout(GROUNDED)
    second = GROUNDED.index("<|ref|>text")
    # tokens of the first block are likely (0.9), of the second unlikely (0.3), coordinates very unlikely (0.01)
    dets = [(m.start(), m.end()) for m in re.finditer(r"<\|det\|>.*?<\|/det\|>", GROUNDED)]
    in_det = [any(s <= a and b <= e for s, e in dets) for a, b in spans]
    probs = [0.01 if det else (0.9 if a < second else 0.3) for (a, _), det in zip(spans, in_det, strict=True)]
    blocks = confidence.block_confidences(GROUNDED, spans, [math.log(p) for p in probs], layout)
    assert len(blocks) == len(parse(GROUNDED, 100, 100).blocks) == 2
    assert blocks[0]["confidence"] == pytest.approx(0.9, abs=1e-3) and blocks[0]["min_confidence"] == 0.9
    assert blocks[1]["confidence"] == pytest.approx(0.3, abs=1e-3)
    mean, low = confidence.summary([math.log(p) for p in probs])
    assert low == 0.01 and mean == pytest.approx(sum(probs) / len(probs), abs=1e-4)


def test_clean_text_logprobs_leave_out_removed_groups(texts):
    ids = _encode(texts, GROUNDED)
    spans = texts.spans(ids, GROUNDED)
    layout = confidence.layout(GROUNDED)
    lps = [-0.1] * len(ids)
    clean = confidence.logprob_entries(ids, spans, lps, None,
                                       confidence.kept_tokens(spans, len(GROUNDED), layout, False), texts)
    joined = b"".join(bytes(e["bytes"]) for e in clean).decode()  # a token may hold part of a character
    assert joined == "\n# Annual report\n\n\nRevenue grew 12 % to 1,234.56 EUR. Ünïcødé €\n"
    assert parse(GROUNDED, 1, 1).text == joined.strip().replace("\n\n\n", "\n\n")
    raw = confidence.logprob_entries(ids, spans, lps, None, confidence.kept_tokens(spans, len(GROUNDED), None,
                                                                                   False), texts)
    assert b"".join(bytes(e["bytes"]) for e in raw) == GROUNDED.encode()
    labels = confidence.logprob_entries(ids, spans, lps, None,
                                        confidence.kept_tokens(spans, len(GROUNDED), layout, True), texts)
    assert "".join(e["token"] for e in labels) == "titletext"


def test_out_of_distribution_alternatives_get_openais_floor(texts):
    entries = confidence.logprob_entries([65], [(0, 1)], [-0.5], [[(65, -0.5), (66, -math.inf)]], [True], texts)
    assert entries[0]["top_logprobs"][1]["logprob"] == confidence.LOGPROB_FLOOR


# ---- the loop rule --------------------------------------------------------------------------------------------

# Recorded-style looping outputs (the shapes reported in DeepSeek-OCR #151/#160 and DeepSeek-OCR-2 #28), each cut
# at a token cap: a table row repeated, a line repeated, numbered items stuck, a grounded line with moving boxes.
LOOPS = {
    "table row": "<table><tr><td>Name</td><td>Qty</td></tr>" + "<tr><td>Item A</td><td>1</td></tr>" * 80,
    "line": "# Report\n\nIntro paragraph.\n\n" + "The committee approved the proposal.\n" * 60,
    "numbers": "Results:\n" + "1. 1. 1. " * 120,
    "grounded": "".join(f"<|ref|>text<|/ref|><|det|>[[10, {i}, 900, {i + 30}]]<|/det|>\nSee the note above.\n\n"
                        for i in range(40)),
    "guard-broken": "".join(f"Total amount due {w} the end of the month.\n" for w in
                            ["by", "at", "before", "by", "at", "until"] * 8),
}

# Normal long pages cut at the cap (the worst case for false alarms) and ended on their own.
NORMAL = {
    "dense table": "<table>" + "".join(f"<tr><td>{i}</td><td>{i * 37 % 101}</td><td>{i * 1.5:.2f}</td>"
                                       f"<td>{'ABCDEFG'[i % 7]}</td></tr>" for i in range(400)),
    "empty cells": "<table><tr>" + "<td></td>" * 300 + "</tr></table>",
    "long list": "".join(f"- item {i}: {['apples', 'pears', 'plums'][i % 3]} x {i * 3}\n" for i in range(300)),
    "contents": "".join(f"{i}. Chapter {i} {'.' * 20} {i * 7}\n" for i in range(1, 120)),
    "markdown table": "| a | b |\n| --- | --- |\n" + "".join(f"| {i} | {i * i} |\n" for i in range(300)),
    "prose": " ".join(f"Sentence {i} says something different about topic {i % 17}." for i in range(300)),
}


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_recorded_loops_at_the_cap_are_flagged_with_their_span(name):
    text = LOOPS[name]
    verdict = repetition.assess(text, "length", [], 2000)
    assert verdict["suspected"], name
    span = verdict["span"]
    assert span["repeats"] >= 4 and span["text"].strip() and span["text"] in text
    assert verdict["reason"] in ("ngram", "line")
    assert not repetition.assess(text, "stop", [], 2000)["suspected"]  # a page that ended is never a loop


@pytest.mark.parametrize("name", sorted(NORMAL))
def test_dense_normal_pages_are_not_flagged_even_at_the_cap(name):
    assert repetition.assess(NORMAL[name], "length", [], 2000) == {"suspected": False, "reason": None,
                                                                     "span": None}


def test_the_span_of_a_repeated_line_is_that_line():
    verdict = repetition.assess(LOOPS["line"], "length", [], 2000)
    assert verdict["reason"] == "ngram" and verdict["span"]["text"] == "The committee approved the proposal.\n"
    assert verdict["span"]["repeats"] >= 59


def test_a_guard_banning_through_the_tail_is_evidence():
    """Ban steps recorded from fitted loop checkpoints (400 tokens) under the default guard (30/90) and DeepSeek's
    PDF guard (20/50): a ban every 13-80 tokens; the texts themselves need not repeat exactly."""
    text = NORMAL["prose"]
    recorded = [(30, [60, 139, 171, 200, 245, 274, 328, 356, 386]),
                (20, [50, 71, 129, 149, 198, 218, 267, 290, 313, 375, 394]),
                (30, [50, 78, 107, 120, 155, 184, 197, 232, 261, 274, 309, 338, 351, 386])]
    for n, steps in recorded:
        verdict = repetition.assess(text, "length", steps, 400, ngram_size=n)
        assert verdict["suspected"] and verdict["reason"] == "guard" and verdict["guard_bans"] == len(steps)
        assert not repetition.assess(text, "stop", steps, 400, ngram_size=n)["suspected"]
    assert not repetition.assess(text, "length", [50, 300, 390], 400, ngram_size=30)["suspected"]  # now and then
    assert not repetition.assess(text, "length", list(range(0, 1400, 20)), 2000, ngram_size=30)["suspected"]  # past
    assert not repetition.assess(text, "length", recorded[0][1], 400, ngram_size=0)["suspected"]  # no guard


# ---- options -----------------------------------------------------------------------------------------------------


def test_trust_options_are_checked_and_named():
    from predictor.errors import InvalidRequest
    from predictor.ocr.options import parse_options

    options = parse_options({"logprobs": True, "top_logprobs": 20, "on_repetition": "retry"})
    assert (options.logprobs, options.top_logprobs, options.on_repetition) == (True, 20, "retry")
    assert parse_options({"logprobs": False, "top_logprobs": None}).top_logprobs == 0  # what SDKs send by default
    for bad, param in (({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
                       ({"top_logprobs": 3}, "top_logprobs"), ({"logprobs": "yes"}, "logprobs"),
                       ({"on_repetition": "drop"}, "on_repetition")):
        with pytest.raises(InvalidRequest) as caught:
            parse_options(bad)
        assert caught.value.param == param


def test_retry_plan_strengthens_the_guard_then_changes_the_mode():
    from predictor.families.v1 import DeepseekOcrV1Family
    from predictor.families.v2 import DeepseekOcr2Family
    from predictor.ocr import retry
    from predictor.ocr.resolve import ResolvedOptions

    def resolved(mode, ngram=(30, 90)):
        return ResolvedOptions(prompt="<image>\nFree OCR.", image=DeepseekOcr2Family.image_options(mode, None),
                               raw=False, render=False, labels_are_text=False, max_tokens=100, min_tokens=0,
                               ignore_eos=False, temperature=0.0, top_p=1.0, seed=None, stop=(),
                               ngram_size=ngram[0], ngram_window=ngram[1])

    second, third = retry.extra_attempts(resolved("dynamic"), DeepseekOcr2Family)
    assert (second.ngram_size, second.ngram_window, second.image.mode) == (20, 1024, "dynamic")
    assert (third.ngram_size, third.ngram_window, third.image.mode) == (20, 1024, "global")
    assert retry.stronger(resolved("global", (0, 90))).ngram_size == 20  # a disabled guard is turned on
    assert retry.stronger(resolved("global", (12, 2000))).ngram_window == 2000  # never weaker than asked
    assert retry.other_mode("gundam", DeepseekOcrV1Family.modes) == "base"
    assert retry.other_mode("tiny", DeepseekOcrV1Family.modes) == "small"
