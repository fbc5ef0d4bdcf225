"""Turning an input file into page images to send: an image file as it is, a PDF page by page.

PDF pages are rendered here, not on the server, so a long PDF becomes many small requests that share the
server's batch instead of one request that hits its page limit; a failing page is then known by its number.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from predictor.constants import PDF_DPI, PDFIUM_LOCK

MAX_PAGE_PIXELS = 40_000_000  # below the server's default pixel limit, so a huge page is scaled down, not refused

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg",
         ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff", ".bmp": "image/bmp",
         ".gif": "image/gif"}


class PageError(Exception):
    """A file or page that cannot be read or rendered here."""


@dataclass
class PageImage:
    data: bytes
    mime: str


def image_file(path: Path) -> PageImage:
    """The file's bytes, sent untouched: the server decodes and checks them (a corrupt file gets its 400)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PageError(f"cannot read: {exc.strerror or exc}") from exc
    return PageImage(data, _MIME.get(path.suffix.lower(), "application/octet-stream"))


@contextmanager
def _open_pdf(path: Path) -> Iterator[Any]:
    """The document, under the pdfium lock, closed afterwards; an unreadable file is a PageError."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except (pdfium.PdfiumError, OSError, ValueError) as exc:
            raise PageError(f"not a readable PDF ({exc})") from exc
        try:
            yield pdf
        finally:
            pdf.close()


def pdf_page_count(path: Path) -> int:
    with _open_pdf(path) as pdf:
        count = len(pdf)
    if count == 0:
        raise PageError("a PDF without pages")
    return count


def render_pdf_page(path: Path, index: int, dpi: int = PDF_DPI, max_pixels: int = MAX_PAGE_PIXELS) -> PageImage:
    """Page ``index`` (0-based) as a PNG at ``dpi``, scaled down if it would exceed ``max_pixels``."""
    import pypdfium2 as pdfium

    with _open_pdf(path) as pdf:
        try:
            page = pdf[index]
            try:
                width, height = page.get_size()  # points, 1/72 inch
                if width <= 0 or height <= 0:
                    raise PageError(f"page {index + 1} is empty")
                scale = min(dpi / 72, math.sqrt(max_pixels / (width * height)))
                image = page.render(scale=scale).to_pil().convert("RGB")
            finally:
                page.close()
        except pdfium.PdfiumError as exc:
            raise PageError(f"page {index + 1} cannot be rendered ({exc})") from exc
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return PageImage(buffer.getvalue(), "image/png")


def load_page_image(page: PageImage) -> Any:  # a PIL image; PIL is imported only when drawing
    """The page as a PIL image, for drawing boxes on it (first frame, EXIF orientation applied as the server does)."""
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(page.data))
    image.seek(0)
    return ImageOps.exif_transpose(image).convert("RGB")
