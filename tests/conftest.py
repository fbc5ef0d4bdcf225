"""Shared fixtures: tiny random checkpoints of both families, built once per session, offline."""

from __future__ import annotations

import io
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_v2_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from predictor.testing.tiny import build

    return build(str(tmp_path_factory.mktemp("tiny-v2")), "v2")


@pytest.fixture(scope="session")
def tiny_v1_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from predictor.testing.tiny import build

    return build(str(tmp_path_factory.mktemp("tiny-v1")), "v1")


def page_image(size: tuple[int, int] = (640, 200), text: str = "Hello DeepSeek-OCR"):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((10, 10), text, fill="black")
    return image


def png_bytes(size: tuple[int, int] = (640, 200), text: str = "Hello DeepSeek-OCR") -> bytes:
    buf = io.BytesIO()
    page_image(size, text).save(buf, format="PNG")
    return buf.getvalue()


def blank_pdf(pages: int, size: tuple[float, float] = (612, 792)) -> bytes:
    """Empty pages of any size in points: a few hundred bytes whatever the page size (as an attacker would send)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(*size)
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def tiny_v2_family(tiny_v2_dir: str):
    """The tiny DeepSeek-OCR-2 loaded once per test run (CPU, float32, sdpa). Shared: a test that changes the model
    (the experts install) loads its own."""
    import torch

    from predictor.families.base import LoadSettings
    from predictor.families.v2 import DeepseekOcr2Family

    family = DeepseekOcr2Family()
    family.load(tiny_v2_dir, LoadSettings("cpu", torch.float32, "sdpa", None))
    return family


def _fitted(target: str) -> str:
    # Fits take tens of seconds: they are cached across sessions, keyed by everything that shapes the weights
    # (predictor.testing.fitted.cached_fitted), and built atomically so concurrent sessions can share the cache.
    from predictor.testing.fitted import cached_fitted

    return cached_fitted(target, "v2")


@pytest.fixture(scope="session")
def fitted_grounding_dir() -> str:
    return _fitted("grounding")


@pytest.fixture(scope="session")
def fitted_loop_dir() -> str:
    return _fitted("loop")


@pytest.fixture(scope="session")
def fitted_normal_dir() -> str:
    return _fitted("normal")
