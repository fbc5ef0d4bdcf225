"""``--render``: one ``STEM.layouts.pdf`` with every page's labelled boxes, as DeepSeek's PDF script writes.

Each page is drawn as soon as its answer is back and kept as a JPEG; the PDF embeds those JPEGs as they are
(pdfium, no decoding), so a long document costs its JPEG bytes, not its pixels."""

from __future__ import annotations

import io

from predictor.client.pages import PDFIUM_LOCK, PageImage, load_page_image
from predictor.client.render import draw_boxes

POINTS_PER_PIXEL = 72 / 144  # pages are drawn from 144 DPI renders: letter pages come out letter-sized
JPEG_QUALITY = 85


def layout_page(page: PageImage, blocks: list[dict]) -> tuple[bytes, int, int]:
    """The page with its boxes drawn, as (JPEG bytes, width, height)."""
    drawn = load_page_image(PageImage(draw_boxes(page, blocks), "image/png"))
    buffer = io.BytesIO()
    drawn.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), drawn.width, drawn.height


def layouts_pdf(pages: list[tuple[bytes, int, int]]) -> bytes:
    """One PDF page per drawn page, in order."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument.new()
        try:
            for data, width, height in pages:
                w, h = width * POINTS_PER_PIXEL, height * POINTS_PER_PIXEL
                page = pdf.new_page(w, h)
                image = pdfium.PdfImage.new(pdf)
                image.load_jpeg(io.BytesIO(data), inline=True)
                image.set_matrix(pdfium.PdfMatrix().scale(w, h))
                page.insert_obj(image)
                page.gen_content()
                page.close()
            buffer = io.BytesIO()
            pdf.save(buffer)
        finally:
            pdf.close()
    return buffer.getvalue()
