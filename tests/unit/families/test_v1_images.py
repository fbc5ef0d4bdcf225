"""DeepSeek-OCR v1 preprocessing: grid choice, token counts, pixels, EXIF (no model needed)."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from predictor.families.v1 import images as v1_images

GREY = (127 / 255 - 0.5) / 0.5

# Expected placeholder counts, worked out by hand from DeepSeek-OCR's published image layout
# (https://github.com/deepseek-ai/DeepSeek-OCR: 16x16-pixel patches, 4x token compression, one newline token per
# row, one separator): global n(n+1)+1 with n = base/64 (Tiny 73, Small 111, Base/Gundam 273, Large 421), plus
# rows*10*(cols*10+1) for Gundam tiles. Grids: 800x1100 and A4 (aspect ~0.71) -> 2x3 (0.667); 3000x800 (3.75) -> 4x1;
# 641x400 (1.6) -> 3x2 (1.5); 2000x1000 (2.0) ties 2x1 with 4x2 and, with 9 crops, 4x2 wins because the image area
# exceeds half of 8 tiles' area; 1300x650 ties too but its area is too small, so 2x1 stays.
EXPECTED = [
    # (width, height, mode, max_crops, grid, tokens)
    (400, 300, "gundam", 6, None, 273),
    (400, 300, "tiny", 6, None, 73),
    (400, 300, "small", 6, None, 111),
    (400, 300, "base", 6, None, 273),
    (400, 300, "large", 6, None, 421),
    (640, 640, "gundam", 6, None, 273),
    (800, 1100, "gundam", 6, (2, 3), 273 + 3 * 10 * (2 * 10 + 1)),  # 903
    (2480, 3508, "gundam", 6, (2, 3), 903),
    (2480, 3508, "gundam", 9, (2, 3), 903),
    (3000, 800, "gundam", 6, (4, 1), 273 + 1 * 10 * (4 * 10 + 1)),  # 683
    (641, 400, "gundam", 6, (3, 2), 273 + 2 * 10 * (3 * 10 + 1)),  # 893
    (2000, 1000, "gundam", 6, (2, 1), 273 + 1 * 10 * 21),  # 483
    (2000, 1000, "gundam", 9, (4, 2), 273 + 2 * 10 * 41),  # 1093
    (1300, 650, "gundam", 9, (2, 1), 483),
    (2480, 3508, "gundam", 1, None, 273),  # max_crops=1 means the global view alone
    (800, 1100, "base", 6, None, 273),
    (2480, 3508, "large", 9, None, 421),
]


def test_expected_counts_table_literal_values():
    # Guards the table itself against arithmetic slips: the reference quotes 2x3 tiles -> 903 for Gundam.
    assert EXPECTED[6][-1] == 903
    assert [v1_images.count_image_tokens(400, 300, m) for m in ("tiny", "small", "base", "large")] == [73, 111, 273,
                                                                                                      421]


@pytest.mark.parametrize(("width", "height", "mode", "max_crops", "grid", "tokens"), EXPECTED)
def test_grid_and_token_count(width, height, mode, max_crops, grid, tokens):
    assert v1_images.tile_grid(width, height, mode, max_crops) == grid
    assert v1_images.count_image_tokens(width, height, mode, max_crops) == tokens


@pytest.mark.parametrize(("width", "height", "mode", "max_crops", "grid", "tokens"), EXPECTED[:14])
def test_preprocess_shapes_match_grid(width, height, mode, max_crops, grid, tokens):
    pixels = v1_images.preprocess(Image.new("RGB", (width, height), (10, 200, 30)), mode, max_crops)
    base = v1_images.MODES[mode].base_size
    assert pixels.global_view.shape == (1, 3, base, base)
    assert pixels.global_view.dtype == torch.float32
    if grid is None:
        assert pixels.tiles is None
    else:
        cols, rows = grid
        assert pixels.grid == grid
        assert pixels.tiles.shape == (cols * rows, 3, 640, 640)


def test_candidate_grids_are_sorted_by_tile_count_within_limits():
    grids = v1_images.candidate_grids(2, 6)
    products = [c * r for c, r in grids]
    assert products == sorted(products)
    assert min(products) == 2 and max(products) == 6
    assert (1, 1) not in grids and (2, 3) in grids and (3, 2) in grids


def test_same_grid_as_transformers_rule():
    # transformers' UnlimitedOcr/DeepseekOcr2 processors restate the same rule (get_optimal_tiled_canvas); it is
    # pure Python, importable without torchvision from the OCR-2 PIL processor.
    from transformers.models.deepseek_ocr2.image_processing_pil_deepseek_ocr2 import get_optimal_tiled_canvas

    for width, height in [(800, 1100), (2480, 3508), (3000, 800), (641, 400), (1700, 2200), (5000, 700), (900, 900)]:
        for max_crops in (6, 9):
            ours = v1_images.select_grid(width, height, 2, max_crops)
            theirs = get_optimal_tiled_canvas((height, width), (640, 640), 2, max_crops)
            assert tuple(ours) == tuple(theirs), (width, height, max_crops)


def test_values_are_normalised_to_minus_one_one():
    image = Image.new("RGB", (300, 300), (255, 0, 127))
    view = v1_images.preprocess(image, "base").global_view[0]
    assert view[0].max().item() == pytest.approx(1.0)
    assert view[1].min().item() == pytest.approx(-1.0)


def test_global_view_pads_with_grey_keeping_aspect():
    # 400x300 in Base: resized to 1024x768, centred, grey bands of 128 rows above and below.
    view = v1_images.preprocess(Image.new("RGB", (400, 300), (255, 255, 255)), "base").global_view[0]
    assert view[:, 0, 512].tolist() == pytest.approx([GREY] * 3)
    assert view[:, 1023, 512].tolist() == pytest.approx([GREY] * 3)
    assert view[:, 512, 0].tolist() == pytest.approx([1.0] * 3)
    assert view[:, 130, 512].tolist() == pytest.approx([1.0] * 3)


def test_tiny_and_small_squash_without_padding():
    for mode, side in (("tiny", 512), ("small", 640)):
        view = v1_images.preprocess(Image.new("RGB", (400, 100), (255, 255, 255)), mode).global_view[0]
        assert view.shape == (3, side, side)
        assert view.min().item() == pytest.approx(1.0)  # no grey anywhere: aspect not preserved


def test_tiles_are_row_major():
    image = Image.new("RGB", (1280, 1280))
    colours = {(0, 0): (255, 0, 0), (1, 0): (0, 255, 0), (0, 1): (0, 0, 255), (1, 1): (255, 255, 255)}
    for (col, row), colour in colours.items():
        image.paste(colour, (col * 640, row * 640, (col + 1) * 640, (row + 1) * 640))
    pixels = v1_images.preprocess(image, "gundam", max_crops=4)
    assert pixels.grid == (2, 2)
    for index, (col, row) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        expected = [c / 255 * 2 - 1 for c in colours[(col, row)]]
        assert pixels.tiles[index, :, 320, 320].tolist() == pytest.approx(expected, abs=1e-5)


def _jpeg_with_orientation(width: int, height: int, orientation: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, width // 2, height))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    return Image.open(buffer)


def test_exif_orientation_is_applied():
    # Orientation 6: the stored 300x200 picture must be turned 90 degrees clockwise to display as 200x300.
    image = _jpeg_with_orientation(300, 200, 6)
    assert image.size == (300, 200)
    oriented = v1_images.orient(image)
    assert oriented.size == (200, 300) and oriented.mode == "RGB"
    # The blue left half ends up on top after a clockwise turn.
    assert oriented.getpixel((100, 20))[2] > 200 and oriented.getpixel((100, 280))[0] > 200
    assert v1_images.orient(oriented).size == (200, 300)  # idempotent


def test_orient_converts_to_rgb():
    assert v1_images.orient(Image.new("L", (10, 10))).mode == "RGB"
    assert v1_images.orient(Image.new("RGBA", (10, 10))).mode == "RGB"
