"""Decoding untrusted input: base64, data URLs, raw bytes, images and PDFs, with limits on size, pixels, pages.

Every failure is an ``InvalidRequest`` naming the field, never a 500: the client sent something unusable.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import threading
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from predictor.errors import InvalidRequest, PayloadTooLarge

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,", re.IGNORECASE)
_ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "MPO"}


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

PDF_DPI = 144  # the resolution DeepSeek's own PDF script renders pages at
# pdfium is not thread-safe (pypdfium2 docs): decoding runs in worker threads, so every call is serialised.
_PDFIUM_LOCK = threading.Lock()


def is_pdf(data: bytes) -> bool:
    return data[:5] == b"%PDF-"


def render_pdf(data: bytes, field: str, max_pages: int, max_pixels: int) -> list[Image.Image]:
    """Every page as an RGB image at 144 DPI (less for a page that would exceed the pixel limit)."""
    import pypdfium2 as pdfium

    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except (pdfium.PdfiumError, ValueError) as exc:
            raise InvalidRequest(f"{field} is not a readable PDF", param=field) from exc
        try:
            count = len(pdf)
            if count == 0:
                raise InvalidRequest(f"{field} is a PDF without pages", param=field)
            if count > max_pages:
                raise InvalidRequest(f"{field} has {count} pages, over the limit of {max_pages}", param=field)
            return [_render_page(pdf, i, field, max_pixels) for i in range(count)]
        finally:
            pdf.close()


def _render_page(pdf: object, index: int, field: str, max_pixels: int) -> Image.Image:
    import pypdfium2 as pdfium

    page = pdf[index]  # type: ignore[index]
    try:
        width, height = page.get_size()  # points (1/72 inch)
        if width <= 0 or height <= 0:
            raise InvalidRequest(f"{field} page {index + 1} is empty", param=field)
        scale = min(PDF_DPI / 72, math.sqrt(max_pixels / (width * height)))
        return page.render(scale=scale).to_pil().convert("RGB")
    except pdfium.PdfiumError as exc:
        raise InvalidRequest(f"{field} page {index + 1} cannot be rendered", param=field) from exc
    finally:
        page.close()


def decode_document(data: bytes, field: str, max_pixels: int, max_pages: int) -> list[Image.Image]:
    """A PDF's pages, or the one image."""
    if is_pdf(data):
        return render_pdf(data, field, max_pages, max_pixels)
    return [decode_image(data, field, max_pixels)]
