"""Running the batch client as users do (``python -m predictor.client``) and reading what it wrote."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
from PIL import Image

from tests.conftest import page_image, png_bytes

SEPARATOR = "\n\n<--- Page Split --->\n\n"


def client_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "predictor.client", *args]


def run_client(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(client_command(*args), capture_output=True, text=True, timeout=timeout)


def metric(url: str, name: str, labels: str = "") -> float:
    """A counter's value from the server's Prometheus page (0 when it has no sample yet)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def summary_count(stderr: str, what: str) -> int:
    match = re.search(rf"\b{what} (\d+)", stderr)
    assert match, f"no '{what} N' in the summary:\n{stderr}"
    return int(match.group(1))


def make_images(folder: Path, count: int, prefix: str = "p") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:02d}.png"
        path.write_bytes(png_bytes(text=f"page {i}"))
        paths.append(path)
    return paths


def pdf_bytes(pages: int) -> bytes:
    """Pages of 300 x 380 points: 600 x 760 pixels at the client's 144 DPI."""
    images = [page_image((300, 380), f"page {i + 1}") for i in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def make_mixed_folder(root: Path) -> None:
    """PNG, JPEG, a 3-page PDF in a nested folder, a text file and a corrupt image."""
    (root / "sub/deeper").mkdir(parents=True)
    (root / "a.png").write_bytes(png_bytes())
    page_image((500, 300), "jpeg page").save(root / "sub/b.jpg", format="JPEG")
    (root / "sub/deeper/doc.pdf").write_bytes(pdf_bytes(3))
    (root / "notes.txt").write_text("not an image")
    (root / "broken.png").write_bytes(png_bytes()[:200])


def check_complete(outdir: Path, stem: str) -> dict:
    """The input's outputs are whole: the JSON parses and the Markdown is exactly its pages joined."""
    doc = json.loads((outdir / f"{stem}.json").read_text(encoding="utf-8"))
    markdown = (outdir / f"{stem}.md").read_text(encoding="utf-8")
    assert markdown == SEPARATOR.join(page["text"] for page in doc["pages"]) + "\n"
    return doc


def leftovers(outdir: Path) -> list[Path]:
    """Temporary files an interrupted write would leave."""
    return [p for p in outdir.rglob("*") if p.name.endswith(".part")]


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size
