"""Decoding untrusted image input: base64, data URLs and raw bytes, with limits on size and pixels.

Every failure is an ``InvalidRequest`` naming the field, never a 500: the client sent something unusable.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
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


def image_from_base64(value: object, field: str, max_bytes: int, max_pixels: int) -> Image.Image:
    return decode_image(decode_base64(value, field, max_bytes), field, max_pixels)
