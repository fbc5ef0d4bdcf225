"""The playground on a real grounding page: the fitted tiny checkpoint (``predictor.testing.fitted``) emits a
DeepSeek-style markdown page with boxes for any image, so the boxes drawn, the box <-> text links, the confidence
marks and the figures are checked against what the server answers for the same request."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By

from tests.browser import page
from tests.builders import CHAT, chat_body, data_url, image_part
from tests.e2e.server import Server, served


@pytest.fixture(scope="module")
def server(fitted_grounding_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = str(tmp_path_factory.mktemp("browser-logs") / "server-grounding.log")
    with served(fitted_grounding_dir, log) as srv:
        yield srv


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser-files") / "document.png"
    path.write_bytes(page.document_png())
    return path


def _answer(server: Server, driver, document: Path) -> dict:
    """The server's non-streamed answer to the request the page just sent."""
    body = chat_body(image_part(data_url(document.read_bytes())), ocr=driver.execute_script("return state.lastOptions"))
    response = httpx.post(server.url + CHAT, json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def _selected(driver) -> list[tuple[str, str]]:
    """(box or seg, block index) of everything highlighted."""
    return sorted(("box" if "box" in e.get_attribute("class").split() else "seg", e.get_attribute("data-block"))
                  for e in driver.find_elements(By.CSS_SELECTOR, ".sel"))


def test_one_box_per_block_linked_both_ways_to_its_text(driver, server, document, shots):
    page.open_page(driver, server.url)
    driver.find_element(By.CSS_SELECTOR, "#task option[value='markdown']").click()
    page.pick(driver, document)
    assert page.run(driver) == "done", page.text_of(driver, "status")
    answer = _answer(server, driver, document)
    blocks = answer["ocr"]["blocks"]
    assert len(blocks) >= 4  # the fitted page: title, text, image, caption, table, equation
    boxes = driver.find_elements(By.CSS_SELECTOR, "#boxes .box")
    assert len(boxes) == len(blocks)
    assert [b.text for b in boxes] == [block["label"] for block in blocks]
    assert page.text_of(driver, "text") == answer["choices"][0]["message"]["content"]
    low = [i for i, block in enumerate(blocks) if isinstance(block.get("confidence"), float | int)
           and block["confidence"] < 0.8]
    marked = [int(b.get_attribute("data-block")) for b in driver.find_elements(By.CSS_SELECTOR, "#boxes .box.low")]
    assert marked == low

    title = next(i for i, block in enumerate(blocks) if block["label"] == "title")
    boxes[title].click()
    assert _selected(driver) == [("box", str(title)), ("seg", str(title))]
    segment = driver.find_element(By.CSS_SELECTOR, f"#text .seg[data-block='{title}']")
    assert segment.text == blocks[title]["text"].strip()
    table = next(i for i, block in enumerate(blocks) if block["label"] == "table")
    driver.find_element(By.CSS_SELECTOR, f"#text .seg[data-block='{table}']").click()
    assert _selected(driver) == [("box", str(table)), ("seg", str(table))]
    page.shot(driver, shots, "11-grounding-boxes")


def test_keyboard_reaches_a_box_and_selects_it(driver, server, shots):
    first = driver.find_element(By.CSS_SELECTOR, "#boxes .box[data-block='0']")
    driver.execute_script("arguments[0].focus()", first)
    first.send_keys("\n")
    assert ("box", "0") in _selected(driver)


def test_figures_appear_when_the_server_crops_them(driver, server, document, shots):
    """The page offers `figures` only when the server lists it; then every crop it returns is shown."""
    config = httpx.get(server.url + "/ui/config.json").json()
    checkbox = driver.find_elements(By.ID, "opt-figures")
    assert bool(checkbox) == ("figures" in config["options"])
    if not checkbox:
        return  # this server has no figure crops: nothing to show, and nothing offered
    checkbox[0].click()
    assert page.run(driver) == "done", page.text_of(driver, "status")
    answer = _answer(server, driver, document)
    images = sum(1 for block in answer["ocr"]["blocks"] if block["label"] == "image")
    shown = driver.find_elements(By.CSS_SELECTOR, "#figures img")
    assert images >= 1 and len(shown) == images
    page.shot(driver, shots, "12-grounding-figures")
