"""Decoding untrusted input: base64, data URLs, raw bytes, images and PDFs, with limits on size, pixels, pages.

Every failure is an ``InvalidRequest`` naming the field, never a 500: the client sent something unusable.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from predictor.constants import PDF_DPI, PDFIUM_LOCK
from predictor.errors import InvalidRequest, PayloadTooLarge
from predictor.ocr.pages import PageRanges
from predictor.ocr.pages import select as select_pages
from predictor.ocr.types import Page

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,", re.IGNORECASE)
_ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "MPO"}
# The image processors scale the long side to the model's size (1024 px and up): past ~1000:1 the short side
# rounds to 0 and preprocessing fails. A long receipt is ~50:1; 100:1 leaves room and refuses nonsense early.
MAX_ASPECT_RATIO = 100


def check_aspect(width: float, height: float, field: str, what: str = "image") -> None:
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidRequest(f"{field}: the {what} is {width:g}x{height:g}, an aspect ratio over "
                             f"{MAX_ASPECT_RATIO}:1; crop or split it", param=field)


def decode_base64(value: object, field: str, max_bytes: int) -> bytes:
    """Decode a bare base64 string or a ``data:<mime>;base64,`` URL into bytes."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a base64 string or a data URL, got {type(value).__name__}",
                             param=field)
    text = value.strip()
    match = _DATA_URL.match(text)
    if match:
        text = text[match.end():]
    elif text.startswith("data:"):
        raise InvalidRequest(f"{field} is a data URL without ';base64,' encoding", param=field)
    if not text:
        raise InvalidRequest(f"{field} is empty", param=field)
    # base64 grows data by 4/3: refuse before decoding anything that cannot fit.
    if len(text) * 3 // 4 > max_bytes:
        raise PayloadTooLarge(f"{field} exceeds the {max_bytes}-byte limit", param=field)
    try:
        return base64.b64decode(_pad(text.replace("\n", "").replace("\r", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{field} is not valid base64: {exc}", param=field) from exc


def _pad(text: str) -> str:
    # Some clients strip the '=' padding; restore it instead of failing them.
    return text + "=" * (-len(text) % 4)


def decode_image(data: bytes, field: str, max_pixels: int) -> Image.Image:
    """Bytes to an RGB PIL image with EXIF orientation applied; limits checked before pixels are decoded."""
    if not data:
        raise InvalidRequest(f"{field} is empty", param=field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in _ACCEPTED_FORMATS:
                raise InvalidRequest(f"{field} has unsupported image format {image.format}", param=field)
            width, height = image.size
            if width < 1 or height < 1:
                raise InvalidRequest(f"{field} has an empty image", param=field)
            check_aspect(width, height, field)
            if width * height > max_pixels:
                raise InvalidRequest(
                    f"{field} is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
                    param=field,
                )
            image.seek(0)  # first frame of animated GIF/TIFF
            image.load()
    except InvalidRequest:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidRequest(f"{field} is over the pixel limit", param=field) from exc
    except (Image.DecompressionBombWarning, UnidentifiedImageError) as exc:
        raise InvalidRequest(f"{field} is not a decodable image", param=field) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # PIL raises OSError("image file is truncated") and friends for damaged files.
        raise InvalidRequest(f"{field} is a damaged or truncated image: {exc}", param=field) from exc
    image = ImageOps.exif_transpose(image)
    return image.convert("RGB")


# ---- PDF -------------------------------------------------------------------------------------------------------

# PDF_DPI: DeepSeek's PDF script's resolution; PDFIUM_LOCK: pdfium is not thread-safe, one lock per process.


def is_pdf(data: bytes) -> bool:
    return data[:5] == b"%PDF-"


@dataclass(frozen=True)
class DocumentLimits:
    max_image_pixels: int  # one decoded image
    max_pdf_pages: int  # PDF pages of one request, all documents together
    max_page_pixels: int  # one rendered PDF page: a larger page renders at a lower DPI
    max_request_pixels: int  # all rendered PDF pages of one request

    @classmethod
    def from_settings(cls, settings: Any) -> DocumentLimits:
        return cls(settings.max_image_pixels, settings.max_pdf_pages,
                   min(settings.max_page_pixels, settings.max_image_pixels), settings.max_request_pixels)


@dataclass(frozen=True)
class PdfControls:
    """A request's ``dpi`` and ``pages`` for one PDF (``pages`` None: every page)."""

    dpi: int = PDF_DPI
    pages: PageRanges | None = None
    pages_param: str = "pages"  # how errors about the selection name it (e.g. instances[2].pages)


@dataclass(frozen=True)
class PdfPlan:
    """What rendering a PDF will cost, read from its page sizes without rendering anything."""

    field: str
    scales: list[float]
    pixels: int
    numbers: list[int] = dc_field(default_factory=list)  # 0-based index in the PDF of each planned page
    total: int = 0  # pages in the PDF
    dpi: int = PDF_DPI  # asked for; a page over the pixel cap renders lower (its scale says)

    @property
    def pages(self) -> int:
        return len(self.scales)


def plan_pdf(data: bytes, field: str, max_pages: int, max_page_pixels: int,
             controls: PdfControls = PdfControls()) -> PdfPlan:
    """Count the pages and choose each selected page's scale: ``controls.dpi``, lower for a page that would exceed
    the pixel cap (a 200x200-inch page is only a few hundred bytes of PDF but 800 MB of pixels at 144 DPI)."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK, _open_pdf(data, field) as pdf:
        count = len(pdf)
        if count == 0:
            raise InvalidRequest(f"{field} is a PDF without pages", param=field)
        if controls.pages is None and count > max_pages:
            raise InvalidRequest(f"{field} has {count} pages, over the limit of {max_pages}; select some with "
                                 "'pages'", param=field)
        numbers = select_pages(controls.pages, count, max_pages, field, controls.pages_param)
        scales, pixels = [], 0
        for index in numbers:
            try:
                width, height = pdf.get_page_size(index)  # points (1/72 inch)
            except pdfium.PdfiumError as exc:
                raise InvalidRequest(f"{field} page {index + 1} cannot be read", param=field) from exc
            if not (width > 0 and height > 0):
                raise InvalidRequest(f"{field} page {index + 1} is empty", param=field)
            check_aspect(width, height, field, f"page {index + 1}")
            scale = min(controls.dpi / 72, math.sqrt(max_page_pixels / (width * height)))
            scales.append(scale)
            pixels += math.ceil(width * scale) * math.ceil(height * scale)
        return PdfPlan(field, scales, pixels, numbers, count, controls.dpi)


@contextlib.contextmanager
def _open_pdf(data: bytes, field: str) -> Iterator[Any]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except (pdfium.PdfiumError, ValueError) as exc:
        raise InvalidRequest(f"{field} is not a readable PDF", param=field) from exc
    try:
        yield pdf
    finally:
        pdf.close()


def render_planned(data: bytes, plan: PdfPlan) -> list[Image.Image]:
    with PDFIUM_LOCK, _open_pdf(data, plan.field) as pdf:
        return [_render_page(pdf, i, plan.field, scale) for i, scale in zip(plan.numbers, plan.scales, strict=True)]


@dataclass(frozen=True)
class PageInfo:
    """Where a page comes from: its number in its document and, for a PDF page, how it was rendered."""

    number: int = 1  # 1-based, in its document
    total: int = 1  # pages of its document
    dpi: float | None = None  # PDF pages: the resolution rendered at
    scaled: bool = False  # rendered below the asked dpi to stay within the pixel limit


class PdfPage:
    """A PDF page that renders when called (when its turn comes), and says where it comes from."""

    def __init__(self, data: bytes, plan: PdfPlan, position: int):
        self._data, self._plan, self._position = data, plan, position
        scale = plan.scales[position]
        self.info = PageInfo(plan.numbers[position] + 1, plan.total, round(scale * 72, 2),
                             scale < plan.dpi / 72 - 1e-9)

    def __call__(self) -> Image.Image:
        with PDFIUM_LOCK, _open_pdf(self._data, self._plan.field) as pdf:
            return _render_page(pdf, self._plan.numbers[self._position], self._plan.field,
                                self._plan.scales[self._position])


def page_info(page: Page) -> PageInfo:
    # Not getattr(page, "info"): a PIL image has an ``info`` dict of its own (JPEG: jfif, dpi, ...).
    return page.info if isinstance(page, PdfPage) else PageInfo()


def lazy_pages(data: bytes, plan: PdfPlan) -> list[Page]:
    """One renderer per page: a PDF's pages then exist as pixels only while they are being OCR'd."""
    return [PdfPage(data, plan, i) for i in range(plan.pages)]


def render_pdf(data: bytes, field: str, max_pages: int, max_pixels: int) -> list[Image.Image]:
    """Every page as an RGB image at 144 DPI (less for a page that would exceed the pixel limit)."""
    return render_planned(data, plan_pdf(data, field, max_pages, max_pixels))


def _render_page(pdf: Any, index: int, field: str, scale: float) -> Image.Image:
    import pypdfium2 as pdfium

    page = pdf[index]
    try:
        return page.render(scale=scale).to_pil().convert("RGB")
    except pdfium.PdfiumError as exc:
        raise InvalidRequest(f"{field} page {index + 1} cannot be rendered", param=field) from exc
    finally:
        page.close()


def decode_documents(items: Sequence[tuple[bytes, str]], limits: DocumentLimits, lazy: bool = False,
                     controls: Sequence[PdfControls] | None = None) -> list[list[Page]]:
    """The pages of every document of one request (``(data, field)`` each, with its ``controls`` if given).
    Every PDF's page count and rendered size are checked against the request's limits before any page is
    rendered; ``lazy`` leaves PDF pages as renderers (``PdfPage``) instead of rendering them all now."""
    controls = controls or [PdfControls()] * len(items)
    plans = [plan_pdf(data, field, limits.max_pdf_pages, limits.max_page_pixels, control) if is_pdf(data)
             else None for (data, field), control in zip(items, controls, strict=True)]
    pages = pixels = 0
    for plan in plans:
        if plan is None:
            continue
        pages, pixels = pages + plan.pages, pixels + plan.pixels
        if pages > limits.max_pdf_pages:
            raise InvalidRequest(f"{plan.field}: the request's PDFs have more than {limits.max_pdf_pages} pages "
                                 "together, over the limit per request", param=plan.field)
        if pixels > limits.max_request_pixels:
            raise InvalidRequest(f"{plan.field}: the request's PDF pages would render to more than "
                                 f"{limits.max_request_pixels} pixels together, over the limit per request; "
                                 "send fewer or smaller pages", param=plan.field)
    render = lazy_pages if lazy else render_planned
    return [render(data, plan) if plan is not None else [decode_image(data, field, limits.max_image_pixels)]
            for (data, field), plan in zip(items, plans, strict=True)]


def decode_document(data: bytes, field: str, max_pixels: int, max_pages: int) -> list[Image.Image]:
    """A PDF's pages, or the one image."""
    if is_pdf(data):
        return render_pdf(data, field, max_pages, max_pixels)
    return [decode_image(data, field, max_pixels)]
