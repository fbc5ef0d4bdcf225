"""Untrusted input decoding: base64 forms, damaged images, limits, EXIF, PDFs."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from predictor.errors import InvalidRequest, PayloadTooLarge
from predictor.ocr.documents import (
    DocumentLimits,
    decode_base64,
    decode_document,
    decode_documents,
    decode_image,
    render_pdf,
)
from tests.conftest import blank_pdf, png_bytes

PNG = png_bytes((64, 32))


def _pdf(pages: int, size=(200, 100)) -> bytes:
    images = [Image.new("RGB", size, "white") for _ in range(pages)]
    buf = io.BytesIO()
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:])
    return buf.getvalue()


@pytest.mark.parametrize("encoded", [
    base64.b64encode(PNG).decode(),
    "data:image/png;base64," + base64.b64encode(PNG).decode(),
    base64.b64encode(PNG).decode().rstrip("="),  # padding stripped by some clients
    "\n".join(base64.encodebytes(PNG).decode().splitlines()),  # MIME line breaks
])
def test_base64_forms(encoded):
    assert decode_base64(encoded, "image", 10**6) == PNG


@pytest.mark.parametrize(("value", "error"), [
    ("", InvalidRequest), ("%%%", InvalidRequest), (42, InvalidRequest), ("data:image/png,rawtext", InvalidRequest),
    ("A" * 2000, PayloadTooLarge),
])
def test_bad_base64_names_the_field(value, error):
    with pytest.raises(error) as info:
        decode_base64(value, "instances[3].image", 1000)
    assert info.value.param == "instances[3].image"


def test_damaged_images_and_pixel_limit():
    with pytest.raises(InvalidRequest, match="not a decodable image"):
        decode_image(b"definitely not an image", "f", 10**8)
    with pytest.raises(InvalidRequest, match="damaged or truncated"):
        decode_image(png_bytes((400, 400))[:300], "f", 10**8)
    with pytest.raises(InvalidRequest, match="over the limit"):
        decode_image(PNG, "f", 64 * 32 - 1)
    assert decode_image(PNG, "f", 64 * 32).size == (64, 32)


def test_exif_orientation_and_mode():
    image = Image.new("RGBA", (60, 20), (0, 0, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", exif=exif)
    decoded = decode_image(buf.getvalue(), "f", 10**6)
    assert decoded.size == (20, 60) and decoded.mode == "RGB"


def test_pdf_pages_dpi_and_limits():
    pages = decode_document(_pdf(3), "doc", 10**8, 5)
    assert [p.size for p in pages] == [(400, 200)] * 3  # 144 DPI = 2x the 72-point page size
    with pytest.raises(InvalidRequest, match="over the limit of 2"):
        render_pdf(_pdf(3), "doc", 2, 10**8)
    capped = render_pdf(_pdf(1, (2000, 2000)), "doc", 5, 1_000_000)[0]  # 4000x4000 at 144 DPI would be 16 MP
    assert capped.width * capped.height <= 1_000_000 and capped.width >= 990
    with pytest.raises(InvalidRequest, match="not a readable PDF"):
        render_pdf(b"%PDF-1.7 garbage", "doc", 5, 10**8)
    assert len(decode_document(PNG, "doc", 10**8, 5)) == 1



def _limits(**kw) -> DocumentLimits:
    values = {"max_image_pixels": 10**8, "max_pdf_pages": 32, "max_page_pixels": 16_000_000,
              "max_request_pixels": 100_000_000, **kw}
    return DocumentLimits(**values)


def _no_rendering(monkeypatch) -> None:
    import pypdfium2 as pdfium

    def refuse(*args, **kwargs):
        raise AssertionError("a page was rendered before the request's limits were checked")

    monkeypatch.setattr(pdfium.PdfPage, "render", refuse)


def test_request_page_limit_is_checked_before_rendering(monkeypatch):
    _no_rendering(monkeypatch)
    docs = [(_pdf(12), f"doc[{i}]") for i in range(3)]
    with pytest.raises(InvalidRequest, match="more than 32 pages") as info:
        decode_documents(docs, _limits())
    assert info.value.param == "doc[2]"


def test_huge_pages_render_below_144_dpi_and_the_request_pixel_budget(monkeypatch):
    huge = blank_pdf(1, (14400, 14400))  # 200 x 200 inches: 829 MP at 144 DPI, a few hundred bytes of PDF
    assert len(huge) < 5000
    (page,) = decode_documents([(huge, "doc")], _limits(max_page_pixels=4_000_000))[0]
    assert page.width * page.height <= 4_000_000 and page.width >= 1990
    _no_rendering(monkeypatch)
    with pytest.raises(InvalidRequest, match="render to more than") as info:
        decode_documents([(blank_pdf(4, (14400, 14400)), "doc")], _limits(max_request_pixels=10_000_000,
                                                                      max_page_pixels=4_000_000))
    assert info.value.param == "doc"


def test_pages_with_absurd_aspect_ratios_are_refused_before_rendering(monkeypatch):
    _no_rendering(monkeypatch)
    with pytest.raises(InvalidRequest, match="aspect ratio"):
        decode_documents([(blank_pdf(1, (14400, 10)), "doc")], _limits())


def test_lazy_pages_render_one_at_a_time(monkeypatch):
    import pypdfium2 as pdfium

    rendered = []
    original = pdfium.PdfPage.render

    def counting(self, *args, **kwargs):
        rendered.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pdfium.PdfPage, "render", counting)
    (pages,) = decode_documents([(_pdf(3), "doc")], _limits(), lazy=True)
    assert len(pages) == 3 and not rendered and all(callable(p) for p in pages)
    assert pages[1]().size == (400, 200) and len(rendered) == 1
    (image,) = decode_documents([(PNG, "img")], _limits(), lazy=True)[0]
    assert isinstance(image, Image.Image)
