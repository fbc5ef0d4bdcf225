"""Driving the playground page: open it, pick a file, press OCR, wait, read what it shows."""

from __future__ import annotations

import base64
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


def data_url(raw: bytes, media: str) -> str:
    return f"data:{media};base64," + base64.b64encode(raw).decode()


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 bytes per pixel."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
