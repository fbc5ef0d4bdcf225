"""One page's raw output -> what the client gets: clean text (figure links or placeholders, Markdown options),
blocks (Markdown options, captions tied to what they caption), figure crops. The same steps serve streaming
(``PageStream``), whose deltas add up to the text ``finish_page`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from predictor.ocr import captions, figures, grounding, markdown


class TextOptions(Protocol):
    raw: bool
    labels_are_text: bool
    figures: bool
    math: str
    table_format: str


@dataclass
class PagePost:
    text: str
    blocks: list[dict[str, Any]]
    parsed: list[grounding.Block]
    figures: list[dict[str, Any]] = field(default_factory=list)
    figures_skipped: list[dict[str, Any]] = field(default_factory=list)


def _markdown(options: TextOptions) -> markdown.MarkdownOptions:
    return markdown.MarkdownOptions(options.math, options.table_format)


def finish_page(raw: str, image: Image.Image, options: TextOptions, page_index: int = 0) -> PagePost:
    """``page_index``: the page's 0-based number in the request, which figure names carry."""
    namer = figures.Namer(page_index, image.width, image.height, options.figures)
    parsed = grounding.parse(raw, image.width, image.height, group_text=namer)
    md = _markdown(options)
    if options.raw:
        text = raw
    elif options.labels_are_text:
        text = markdown.convert("\n".join(b.label for b in parsed.blocks) or parsed.text, md).text
    else:
        text = markdown.convert(parsed.text, md).text
    blocks = []
    for block in parsed.blocks:
        entry = block.to_dict()
        converted = markdown.convert(block.text, md)
        entry["text"] = converted.text
        if converted.tables_kept_html:
            entry["tables_kept_html"] = converted.tables_kept_html
        blocks.append(entry)
    captions.link(blocks)
    post = PagePost(text, blocks, parsed.blocks)
    if options.figures:
        post.figures, post.figures_skipped = figures.crop(image, parsed.blocks, namer.planned)
    return post


class PageStream:
    """Clean text deltas of one page as the raw text grows (see ``grounding.StreamCleaner``)."""

    def __init__(self, image: Image.Image, options: TextOptions, page_index: int = 0):
        namer = figures.Namer(page_index, image.width, image.height, options.figures)
        self.cleaner = grounding.StreamCleaner(group_text=namer)
        self.text = markdown.text_stream(_markdown(options))

    def feed(self, raw_so_far: str) -> str:
        return self.text.push(self.cleaner.feed(raw_so_far))

    def finish(self, raw: str) -> str:
        return self.text.push(self.cleaner.finish(raw)) + self.text.finish()
