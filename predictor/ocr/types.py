"""The shapes the OCR domain hands to the protocols: a request's resolved options, its documents and their pages,
and the OCR output. Protocol adapters (``predictor/protocols``) build responses from these and nothing deeper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from predictor.engine.types import SamplingParams
from predictor.errors import InvalidRequest
from predictor.families.base import ImageOptions

DocumentKind = Literal["image", "pdf"]

# A page to OCR: an image, or a function that renders it (a PDF page, rendered when its turn comes).
Page = Image.Image | Callable[[], Image.Image]


@dataclass(frozen=True)
class ResolvedOptions:
    """A request's options with every default filled in and every value valid for the loaded family."""

    prompt: str  # "<image>\n<instruction>"
    image: ImageOptions  # mode and max_crops set
    raw: bool
    render: bool
    labels_are_text: bool  # grounding task: each box's label is the text of the box
    max_tokens: int  # already capped by --max_new_tokens
    min_tokens: int
    ignore_eos: bool
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...]
    ngram_size: int
    ngram_window: int
    figures: bool = False  # crop image blocks (predictor.ocr.figures)
    math: str = "latex"  # predictor.ocr.markdown
    table_format: str = "html"
    ngram_whitelist: tuple[int, ...] | None = None  # None: the family's (table tags)

    def sampling(self, prompt_tokens: int, max_context: int) -> SamplingParams:
        room = max_context - prompt_tokens
        if room < 1:
            raise InvalidRequest(f"the prompt takes {prompt_tokens} tokens and leaves no room in the "
                                 f"{max_context}-token context; use a smaller mode", param="mode")
        max_new = min(self.max_tokens, room)
        return SamplingParams(
            max_new_tokens=max_new, min_new_tokens=min(self.min_tokens, max_new), ignore_eos=self.ignore_eos,
            temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop=self.stop,
            ngram_size=self.ngram_size, ngram_window=self.ngram_window, ngram_whitelist=self.ngram_whitelist,
        )


@dataclass
class Document:
    """One input of a request: an image (one page) or a PDF's pages, with the options its pages run with."""

    pages: list[Page]  # images, or renderers of PDF pages, called when the page's turn comes
    kind: DocumentKind
    options: ResolvedOptions


@dataclass
class OcrOutput:
    text: str  # clean text (grounding tags removed) unless raw was asked for
    raw_text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    image_tokens: int
    blocks: list[dict[str, Any]] = field(default_factory=list)  # a multi-page output's carry their "page"
    rendered_png: str | None = None  # base64 PNG with the boxes drawn, when render was asked for
    ttft_s: float | None = None  # from the start of preprocessing to the first sampled token
    pages: list[OcrOutput] = field(default_factory=list)  # per page, for a multi-page output
    figures: list[dict[str, Any]] | None = None  # crops of this page; None: the figures option was off
    figures_skipped: list[dict[str, Any]] = field(default_factory=list)  # degenerate boxes, crops over budget
    page: dict[str, Any] = field(default_factory=dict)  # number, width, height (and dpi for a PDF page)

    @property
    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens, "image_tokens": self.image_tokens}

    @property
    def page_outputs(self) -> list[OcrOutput]:
        return self.pages or [self]
