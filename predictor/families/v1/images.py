"""DeepSeek-OCR v1 image preprocessing with PIL and numpy (no torchvision).

transformers' ``UnlimitedOcrImageProcessor`` implements the same geometry but only has a torchvision backend,
which a CPU-only install cannot have (docs/ARCHITECTURE.md). The rules restated here come from DeepSeek's own
preprocessing (deepseek-ai/DeepSeek-OCR ``DeepSeek-OCR-vllm/process/image_process.py`` and the HF remote code
``modeling_deepseekocr.py``):

- EXIF transpose, then RGB.
- Tiles only in crop mode (Gundam) and only when a side exceeds the 640 tile size; the grid (cols, rows) is the
  candidate with the closest aspect ratio; the image is resized (aspect NOT preserved) to 640*cols x 640*rows and
  cut row-major into 640x640 tiles.
- Global view: aspect-preserving pad to a base_size square with grey (127, 127, 127); in non-crop modes with
  image_size <= 640 (Tiny, Small) the image is squashed to image_size^2 first.
- ToTensor, then mean = std = 0.5, so pixels lie in [-1, 1]; bicubic resampling everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

TILE_SIZE = 640
PATCH_SIZE = 16  # SAM patch embedding
DOWNSAMPLE = 4  # SAM neck + the two stride-2 convs (net_2, net_3)
MIN_CROPS = 2
DEFAULT_MAX_CROPS = 6  # DeepSeek's vLLM scripts; its HF remote code allows up to 9
MAX_CROPS_LIMIT = 9
# int(0.5 * 255) per channel: DeepSeek pads with the normalisation mean, i.e. grey.
PAD_COLOR = (127, 127, 127)
_RESAMPLE = Image.Resampling.BICUBIC


@dataclass(frozen=True)
class ModeSpec:
    """One of DeepSeek-OCR's resolution modes (README "Support-Modes")."""

    base_size: int  # side of the global view
    image_size: int  # side of a tile in crop mode; the squash size of Tiny/Small
    crop: bool


MODES: dict[str, ModeSpec] = {
    "gundam": ModeSpec(base_size=1024, image_size=TILE_SIZE, crop=True),
    "tiny": ModeSpec(base_size=512, image_size=512, crop=False),
    "small": ModeSpec(base_size=640, image_size=640, crop=False),
    "base": ModeSpec(base_size=1024, image_size=1024, crop=False),
    "large": ModeSpec(base_size=1280, image_size=1280, crop=False),
}


@dataclass
class V1Pixels:
    """Model-ready pixels of one image: the global view and, when tiled, the row-major tiles."""

    global_view: torch.Tensor  # [1, 3, base, base], float32 in [-1, 1]
    tiles: torch.Tensor | None  # [cols*rows, 3, 640, 640] or None
    grid: tuple[int, int]  # (cols, rows); (1, 1) when not tiled


def orient(image: Image.Image) -> Image.Image:
    """EXIF transpose then RGB, as DeepSeek's loader does; a second call is a no-op (the tag is removed)."""
    image = ImageOps.exif_transpose(image) or image
    return image if image.mode == "RGB" else image.convert("RGB")


def candidate_grids(min_crops: int, max_crops: int) -> list[tuple[int, int]]:
    """(cols, rows) grids with min <= cols*rows <= max, ordered by tile count.

    Built exactly like DeepSeek's ``dynamic_preprocess`` (a set, then a stable sort by product), so that the
    order inside one tile count, which decides exact ties, is the same as upstream's on CPython.
    """
    grids = {
        (i, j)
        for n in range(min_crops, max_crops + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_crops <= i * j <= max_crops
    }
    return sorted(grids, key=lambda g: g[0] * g[1])


def select_grid(width: int, height: int, min_crops: int, max_crops: int, tile: int = TILE_SIZE) -> tuple[int, int]:
    """DeepSeek's ``find_closest_aspect_ratio``: closest cols/rows to width/height; on an exact tie a later
    (larger) grid wins while the image area exceeds half the tiles' area."""
    aspect = width / height
    area = width * height
    best_diff = float("inf")
    best = (1, 1)
    for cols, rows in candidate_grids(min_crops, max_crops):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best_diff, best = diff, (cols, rows)
        elif diff == best_diff and area > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best


def tile_grid(width: int, height: int, mode: str, max_crops: int) -> tuple[int, int] | None:
    """The tile grid for this image and mode, or None when only the global view is used."""
    spec = MODES[mode]
    if not spec.crop or max(width, height) <= spec.image_size:
        return None
    grid = select_grid(width, height, min(MIN_CROPS, max_crops), max_crops, spec.image_size)
    # max_crops=1 leaves only the 1x1 grid; DeepSeek counts no tile tokens for it, so it means "global only".
    return None if grid == (1, 1) else grid


def count_image_tokens(width: int, height: int, mode: str, max_crops: int = DEFAULT_MAX_CROPS) -> int:
    """``<image>`` placeholders for one image: n(n+1)+1 for the global view (one newline per row, one view
    separator) plus rows*q*(cols*q+1) for the tiles, as DeepSeek's preprocessing counts them."""
    spec = MODES[mode]
    n = math.ceil(spec.base_size / PATCH_SIZE / DOWNSAMPLE)
    tokens = n * (n + 1) + 1
    grid = tile_grid(width, height, mode, max_crops)
    if grid is not None:
        cols, rows = grid
        q = math.ceil(spec.image_size / PATCH_SIZE / DOWNSAMPLE)
        tokens += rows * q * (cols * q + 1)
    return tokens


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """HWC uint8 -> CHW float32, (x/255 - 0.5) / 0.5."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - 0.5) / 0.5
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def global_view(image: Image.Image, mode: str) -> Image.Image:
    spec = MODES[mode]
    if not spec.crop and spec.image_size <= TILE_SIZE:
        # Tiny/Small: the HF remote code squashes to image_size^2 (aspect not kept) before padding (a no-op then).
        image = image.resize((spec.image_size, spec.image_size), _RESAMPLE)
    return ImageOps.pad(image, (spec.base_size, spec.base_size), method=_RESAMPLE, color=PAD_COLOR)


def cut_tiles(image: Image.Image, grid: tuple[int, int], tile: int = TILE_SIZE) -> list[Image.Image]:
    cols, rows = grid
    resized = image.resize((tile * cols, tile * rows), _RESAMPLE)
    return [
        resized.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile)) for r in range(rows) for c in range(cols)
    ]


def preprocess(image: Image.Image, mode: str, max_crops: int = DEFAULT_MAX_CROPS) -> V1Pixels:
    """Global view and tiles of an already oriented RGB image (see ``orient``)."""
    spec = MODES[mode]
    view = _to_tensor(global_view(image, mode)).unsqueeze(0)
    grid = tile_grid(image.width, image.height, mode, max_crops)
    if grid is None:
        return V1Pixels(global_view=view, tiles=None, grid=(1, 1))
    tiles = torch.stack([_to_tensor(t) for t in cut_tiles(image, grid, spec.image_size)])
    return V1Pixels(global_view=view, tiles=tiles, grid=grid)
