"""``--render``: the page with its blocks' boxes and labels drawn, drawn by the server's own drawing code."""

from __future__ import annotations

import dataclasses
from typing import Any

from predictor.client.pages import PageImage, load_page_image


def draw_boxes(page: PageImage, blocks: list[dict[str, Any]]) -> bytes:
    from predictor.ocr.grounding import Block, render

    names = {f.name for f in dataclasses.fields(Block)}
    parsed = [Block(**{k: v for k, v in block.items() if k in names}) for block in blocks
              if isinstance(block, dict) and names <= block.keys()]
    return render(load_page_image(page), parsed)
