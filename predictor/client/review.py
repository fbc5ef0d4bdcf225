"""``--review-below T``: ``OUT/review.csv`` lists what a person should look at: every page suspected of looping or
whose confidence is below ``T``, and every block whose confidence is below ``T``.

Columns: file, page, block (1-based; empty for a page row), label (the block's), confidence, looped (the page's
loop verdict). Built from the documents' JSON, so files skipped because their outputs exist are listed too.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

COLUMNS = ("file", "page", "block", "label", "confidence", "looped")
FILENAME = "review.csv"


def _low(value: Any, threshold: float) -> bool:
    return isinstance(value, int | float) and value < threshold


def document_rows(doc: dict[str, Any], threshold: float) -> list[dict[str, Any]]:
    """Rows for one document (the dict written to ``STEM.json``)."""
    rows = []
    for page in doc.get("pages") or []:
        looped = bool((page.get("repetition") or {}).get("suspected"))
        number = page.get("page")
        if looped or _low(page.get("confidence"), threshold):
            rows.append({"file": doc.get("source"), "page": number, "block": "", "label": "",
                         "confidence": page.get("confidence"), "looped": looped})
        for index, block in enumerate(page.get("blocks") or [], 1):
            if _low(block.get("confidence"), threshold):
                rows.append({"file": doc.get("source"), "page": number, "block": index, "label": block.get("label"),
                             "confidence": block.get("confidence"), "looped": looped})
    return rows


def read_document(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write(outdir: Path, rows: list[dict[str, Any]]) -> Path:
    from predictor.client.outputs import write_atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: (str(r["file"]), r["page"] or 0, r["block"] or 0)):
        writer.writerow(row)
    path = outdir / FILENAME
    write_atomic(path, buffer.getvalue().encode("utf-8"))
    return path
