"""``--review-below``: which pages and blocks go to review.csv, and the options ``--retry-loops`` sends."""

from __future__ import annotations

import csv

from predictor.client import protocol, review
from predictor.client.cli import build_parser


def _doc() -> dict:
    looped = {"suspected": True, "reason": "ngram", "span": {"text": "x", "repeats": 9}}
    fine = {"suspected": False, "reason": None, "span": None}
    return {"source": "scans/a.pdf", "pages": [
        {"page": 1, "confidence": 0.95, "repetition": fine,
         "blocks": [{"label": "title", "confidence": 0.99}, {"label": "table", "confidence": 0.42}]},
        {"page": 2, "confidence": 0.97, "repetition": looped, "blocks": []},
        {"page": 3, "confidence": 0.5, "repetition": fine, "blocks": [{"label": "text", "confidence": None}]},
    ]}


def test_rows_name_low_blocks_low_pages_and_loops(tmp_path):
    rows = review.document_rows(_doc(), 0.8)
    assert [(r["page"], r["block"], r["label"], r["looped"]) for r in rows] == [
        (1, 2, "table", False), (2, "", "", True), (3, "", "", False)]
    path = review.write(tmp_path, rows)
    with path.open(encoding="utf-8") as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == list(review.COLUMNS) and len(read) == 3
    assert read[0]["file"] == "scans/a.pdf" and read[0]["confidence"] == "0.42"
    assert review.document_rows(_doc(), 0.3) == [rows[1]]  # only the loop is left


def test_retry_loops_sends_on_repetition_and_page_results_keep_the_verdict():
    assert protocol.options(None, None, None, False, on_repetition="retry") == {"on_repetition": "retry"}
    assert "on_repetition" not in protocol.options(None, None, None, False)
    body = {"choices": [{"message": {"content": "t"}, "finish_reason": "length"}], "usage": {},
            "ocr": {"pages": [{"blocks": [], "confidence": 0.7, "min_confidence": 0.1,
                               "repetition": {"suspected": True}, "attempts": [{"attempt": 1}]}]}}
    page = protocol.parse_answer("openai", body)
    assert (page.confidence, page.min_confidence, page.repetition, page.attempts) == (
        0.7, 0.1, {"suspected": True}, [{"attempt": 1}])
    args = build_parser().parse_args(["x.png", "--review-below", "0.8", "--retry-loops"])
    assert args.review_below == 0.8 and args.retry_loops
