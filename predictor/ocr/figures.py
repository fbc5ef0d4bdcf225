"""Figures: each ``image`` block's boxes cropped from the original page as JPEGs named ``{page}_{i}.jpg`` (page
0-based as DeepSeek's PDF script names them, ``i`` counting the page's crops), and what stands in the clean text
where the figure was: ``![](images/{page}_{i}.jpg)`` with ``figures``, the visible placeholder ``[figure]``
without.

A crop never exceeds the page (pixel boxes are clamped to it); a degenerate box (zero area on the page, or written
inverted by the model) gets no crop and no link and is reported; the crops of a response share one byte budget
(``--max_response_bytes``), and a crop past it is reported too, never a 500.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

FIGURE_LABEL = "image"
PLACEHOLDER = "[figure]"
JPEG_QUALITY = 85
MIME = "image/jpeg"


def figure_name(page_index: int, number: int) -> str:
    return f"{page_index}_{number}.jpg"


def link(name: str) -> str:
    return f"![](images/{name})"


def pixel_box(box: list[int], width: int, height: int) -> list[int]:
    """A 0-999 box in pixels of a ``width`` x ``height`` page, clamped to it (what grounding's boxes_px hold)."""
    sx, sy = width / 999, height / 999
    x1, y1, x2, y2 = (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))
    return [max(0, min(width, x1)), max(0, min(height, y1)), max(0, min(width, x2)), max(0, min(height, y2))]


@dataclass
class Planned:
    block: int  # index of the image block on its page
    box: int  # index of the box in the block
    name: str | None  # None: skipped
    reason: str = ""


@dataclass
class Namer:
    """``grounding.GroupText`` for one page: called for every group with boxes, in order, it names the image
    boxes and says what the text keeps; ``planned`` then tells ``crop`` what to cut."""

    page_index: int  # 0-based
    width: int
    height: int
    figures: bool  # links (crops follow) or placeholders
    planned: list[Planned] = field(default_factory=list)
    _blocks: int = 0
    _named: int = 0

    def __call__(self, label: str, boxes: list[list[int]], inverted: tuple[bool, ...]) -> str:
        block, self._blocks = self._blocks, self._blocks + 1
        if label != FIGURE_LABEL:
            return ""
        texts = []
        for i, box in enumerate(boxes):
            x1, y1, x2, y2 = pixel_box(box, self.width, self.height)
            reason = "inverted box" if i < len(inverted) and inverted[i] else \
                "zero area on the page" if x2 <= x1 or y2 <= y1 else ""
            if reason:
                if self.figures:
                    self.planned.append(Planned(block, i, None, reason))
                continue
            name = figure_name(self.page_index, self._named)
            self._named += 1
            self.planned.append(Planned(block, i, name))
            texts.append(link(name) if self.figures else PLACEHOLDER)
        return "\n".join(texts)


def crop(image: Image.Image, blocks: list[Any], planned: list[Planned]) -> tuple[list[dict], list[dict]]:
    """JPEG crops of the named boxes (``blocks``: the page's grounding blocks) and the skipped ones' reports."""
    figures, skipped = [], []
    page = image if image.mode == "RGB" else image.convert("RGB")
    for plan in planned:
        if plan.name is None:
            skipped.append({"block": plan.block, "box": plan.box, "reason": plan.reason})
            continue
        x1, y1, x2, y2 = blocks[plan.block].boxes_px[plan.box]
        buffer = io.BytesIO()
        page.crop((x1, y1, x2, y2)).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        figures.append({"name": plan.name, "block": plan.block, "box": plan.box, "width": x2 - x1,
                        "height": y2 - y1, "mime": MIME, "data": base64.b64encode(buffer.getvalue()).decode("ascii")})
    return figures, skipped


def within_budget(pages: list[Any], limit: int) -> None:
    """Keep the crops of ``pages`` (``OcrOutput``s, in order) within what ``limit`` leaves after the text and the
    rendered pictures; a crop that does not fit is dropped and reported on its page (its link stays)."""
    used = sum(len(p.text) + len(p.raw_text) + len(p.rendered_png or "") for p in pages)
    for page in pages:
        kept = []
        for figure in page.figures or []:
            if used + len(figure["data"]) > limit:
                page.figures_skipped.append({"block": figure["block"], "box": figure["box"], "name": figure["name"],
                                             "reason": f"response size limit ({limit} bytes)"})
            else:
                used += len(figure["data"])
                kept.append(figure)
        if page.figures is not None:
            page.figures = kept
