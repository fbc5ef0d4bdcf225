"""Driving the playground page: open it, pick a file, press OCR, wait, read what it shows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT = 180  # a PDF's pages on two shared CPU cores


def open_page(driver: Any, url: str) -> None:
    driver.get(url + "/ui")
    wait_state(driver, "idle", "done", "error", timeout=30)


def state(driver: Any) -> str:
    return driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def wait_state(driver: Any, *states: str, timeout: float = TIMEOUT) -> str:
    WebDriverWait(driver, timeout).until(lambda d: state(d) in states)
    return state(driver)


def text_of(driver: Any, element_id: str) -> str:
    return driver.execute_script("return document.getElementById(arguments[0]).textContent", element_id)


def pick(driver: Any, path: Path) -> None:
    driver.find_element(By.ID, "file").send_keys(str(path))
    WebDriverWait(driver, 30).until(lambda d: text_of(d, "fileMsg") or d.find_element(By.ID, "run").is_enabled())


def run(driver: Any, *expect: str) -> str:
    """Press OCR; wait until the request is over (``done`` or ``error``, or the states given)."""
    driver.execute_script("document.body.dataset.state = 'pressed'")
    driver.find_element(By.ID, "run").click()
    return wait_state(driver, *(expect or ("done", "error")))


def console_errors(driver: Any) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def chat_posts(driver: Any) -> int:
    """Requests the page has sent to the chat route (resource timing sees every fetch)."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/chat/completions')).length")


def shot(driver: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 bytes per pixel."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def document_png(width: int = 850, height: int = 1100) -> bytes:
    """A page drawn where the fitted grounding checkpoint (``predictor.testing.fitted``) puts its blocks: title,
    paragraph, a plot with its caption, a table, an equation. The model's output does not depend on the pixels;
    this only makes the screenshots read as what they show."""
    import math

    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def box(x1: int, y1: int, x2: int, y2: int) -> tuple[int, int, int, int]:
        return (round(x1 / 999 * width), round(y1 / 999 * height), round(x2 / 999 * width), round(y2 / 999 * height))

    def font(size: int) -> Any:
        return ImageFont.load_default(size=size)

    x1, y1, _, _ = box(112, 64, 887, 118)
    draw.text((x1, y1 + 8), "Fitted Page", fill="black", font=font(40))
    x1, y1, _, _ = box(112, 140, 887, 210)
    draw.text((x1, y1 + 20), "The energy is E = mc^2, as everyone knows.", fill="black", font=font(22))
    x1, y1, x2, y2 = box(200, 240, 800, 520)
    draw.rectangle((x1, y1, x2, y2), outline="black", width=2)
    points = [(x1 + i, (y1 + y2) / 2 - math.sin(i / (x2 - x1) * 4 * math.pi) * (y2 - y1) * 0.35)
              for i in range(0, x2 - x1, 4)]
    draw.line(points, fill=(9, 105, 218), width=3)
    x1, y1, _, _ = box(260, 532, 740, 560)
    draw.text((x1 + 60, y1 + 4), "Figure 1 | A plot.", fill="black", font=font(20))
    x1, y1, x2, y2 = box(150, 600, 850, 760)
    draw.rectangle((x1, y1, x2, y2), outline="black", width=2)
    draw.line(((x1 + x2) // 2, y1, (x1 + x2) // 2, y2), fill="black", width=2)
    draw.line((x1, (y1 + y2) // 2, x2, (y1 + y2) // 2), fill="black", width=2)
    for col, row, text in ((0, 0, "a"), (1, 0, "b"), (0, 1, "1"), (1, 1, "2")):
        draw.text((x1 + (x2 - x1) * (col * 2 + 1) // 4, y1 + (y2 - y1) * (row * 2 + 1) // 4 - 12), text,
                  fill="black", font=font(24))
    x1, y1, _, _ = box(300, 800, 700, 860)
    draw.text((x1 + 90, y1 + 14), "x^2 + y^2 = 1", fill="black", font=font(30))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
