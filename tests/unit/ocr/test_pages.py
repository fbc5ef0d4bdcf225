"""PDF page selection and DPI: parsed, checked against the document and the limits, rendered as asked."""

from __future__ import annotations

import pytest

from predictor.errors import InvalidRequest
from predictor.ocr.documents import DocumentLimits, PdfControls, decode_documents, page_info, plan_pdf
from predictor.ocr.options import parse_options
from predictor.ocr.pages import parse_pages, select
from tests.conftest import blank_pdf


def _limits(**kw):
    values = {"max_image_pixels": 50_000_000, "max_pdf_pages": 10, "max_page_pixels": 8_000_000,
              "max_request_pixels": 100_000_000, **kw}
    return DocumentLimits(**values)


def test_page_specs():
    assert parse_pages("1-3,7") == ((1, 3), (7, 7)) and parse_pages(" 2 ") == ((2, 2),) and parse_pages(4) == ((4, 4),)
    assert select(parse_pages("3,1-2,2"), 5, 10, "doc") == [0, 1, 2]
    assert select(None, 3, 10, "doc") == [0, 1, 2]


@pytest.mark.parametrize("value", ["0", "3-1", "", "1-", "a", "1,,2", "-2", "1.5", True, [1], "9" * 7])
def test_bad_page_specs_name_the_field(value):
    with pytest.raises(InvalidRequest) as info:
        parse_options({"pages": value})
    assert info.value.param == "pages"


@pytest.mark.parametrize(("value", "param"), [(10, "dpi"), (301, "dpi"), ("high", "dpi"), (True, "dpi"),
                                              ("csv", "table_format"), ("tex", "math"), ("yes", "figures")])
def test_bad_values_name_the_field(value, param):
    with pytest.raises(InvalidRequest) as info:
        parse_options({param: value})
    assert info.value.param == param


def test_selection_is_checked_against_the_page_count_and_the_limit():
    with pytest.raises(InvalidRequest, match="page 999 is past the end of doc \\(3 pages\\)") as info:
        plan_pdf(blank_pdf(3), "doc", 10, 10**8, PdfControls(pages=parse_pages("1-999")))
    assert info.value.param == "pages"
    with pytest.raises(InvalidRequest, match="selects 4 pages") as info:
        plan_pdf(blank_pdf(6), "doc", 3, 10**8, PdfControls(pages=parse_pages("1-4")))
    # a document longer than the page limit is fine when the selection is within it
    assert plan_pdf(blank_pdf(6), "doc", 3, 10**8, PdfControls(pages=parse_pages("2,6"))).numbers == [1, 5]


def test_selected_pages_keep_their_numbers_and_render_at_the_asked_dpi():
    (pages,) = decode_documents([(blank_pdf(3), "doc")], _limits(), lazy=True,
                                controls=[PdfControls(200, parse_pages("2"))])
    (page,) = pages
    info = page_info(page)
    assert (info.number, info.total, info.dpi, info.scaled) == (2, 3, 200.0, False)
    assert page().size == (1700, 2200)  # a letter page at 200 DPI


def test_a_page_over_the_pixel_limit_renders_lower_and_says_so():
    (pages,) = decode_documents([(blank_pdf(1), "doc")], _limits(max_page_pixels=2_000_000), lazy=True,
                                controls=[PdfControls(300)])
    info = page_info(pages[0])
    image = pages[0]()
    assert info.scaled and info.dpi < 300 and image.width * image.height <= 2_000_000 * 1.01


def test_an_image_is_page_one_whatever_its_own_metadata():
    import io

    from PIL import Image

    from predictor.ocr.documents import decode_image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "white").save(buf, format="JPEG", dpi=(300, 300))  # JPEG metadata in image.info
    image = decode_image(buf.getvalue(), "image", 10**6)
    assert page_info(image).number == 1 and page_info(image).dpi is None
