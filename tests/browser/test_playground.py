"""The playground in headless Chromium against a real server on the tiny checkpoint: it loads cleanly, streams a
PNG's text to exactly the server's non-streamed answer, pages through a 3-page PDF, refuses an oversized file
before uploading it, and shows the server's own words for a refused request and a dropped connection."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import page
from tests.builders import CHAT, chat_body, data_url, image_part
from tests.conftest import blank_pdf, png_bytes
from tests.e2e.server import Server, served

MAX_BODY = 400_000
MAX_PIXELS = 3_000_000


@pytest.fixture(scope="module")
def server(tiny_v2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = str(tmp_path_factory.mktemp("browser-logs") / "server.log")
    with served(tiny_v2_dir, log, "--default_max_tokens", "24", "--max_body_bytes", str(MAX_BODY),
                "--max_image_pixels", str(MAX_PIXELS)) as srv:
        yield srv


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("browser-files")
    made = {"page.png": png_bytes((640, 240), "Invoice 2024-117, total 1,234.00 EUR"),
            "three.pdf": blank_pdf(3), "huge.png": page.noise_png(400),
            "wide.png": png_bytes((2000, 2000), "too many pixels")}
    for name, raw in made.items():
        (folder / name).write_bytes(raw)
    return {name: folder / name for name in made}


def test_page_loads_without_console_errors_and_every_control_is_labelled(driver, server, shots):
    page.open_page(driver, server.url)
    page.shot(driver, shots, "01-loaded")
    assert page.console_errors(driver) == []
    assert "deepseek-ocr" in page.text_of(driver, "server")
    unlabelled = driver.execute_script("""
        return [...document.querySelectorAll('input, select, textarea')]
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id);""")
    assert unlabelled == []
    tasks = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#task option")]
    assert "ocr" in tasks and "markdown" in tasks
    assert driver.find_element(By.ID, "maxTokens").get_attribute("value") == "24"  # the server's default, shown


def test_png_streams_to_the_servers_non_streamed_answer(driver, server, files, shots):
    page.open_page(driver, server.url)
    page.pick(driver, files["page.png"])
    assert page.run(driver) == "done", page.text_of(driver, "status")
    page.shot(driver, shots, "02-png-done")
    shown = page.text_of(driver, "text")
    deltas = driver.execute_script("return state.deltas")
    options = driver.execute_script("return state.lastOptions")
    body = chat_body(image_part(data_url(files["page.png"].read_bytes())), ocr=options)
    plain = httpx.post(server.url + CHAT, json=body, timeout=120)
    assert plain.status_code == 200, plain.text
    assert deltas > 1  # it arrived in pieces
    assert shown == plain.json()["choices"][0]["message"]["content"]
    assert len(driver.find_elements(By.CSS_SELECTOR, "#boxes .box")) == len(plain.json()["ocr"]["blocks"])
    for button in ("copy", "downloadMd", "downloadJson"):
        assert driver.find_element(By.ID, button).is_enabled()
    assert driver.execute_script("return state.result.choices[0].message.content") == shown
    _downloads_match(driver, plain.json(), shown)


def _downloads_match(driver, answer: dict, shown: str) -> None:
    """Download Markdown / JSON write what the server answered; Copy puts the Markdown on the clipboard."""
    for button in ("downloadMd", "downloadJson"):
        driver.find_element(By.ID, button).click()
    folder = driver.downloads
    WebDriverWait(driver, 20).until(lambda d: {p.name for p in folder.iterdir()} >= {"page.md", "page.json"})
    assert (folder / "page.md").read_text(encoding="utf-8") == shown
    saved = json.loads((folder / "page.json").read_text(encoding="utf-8"))
    assert saved["choices"][0]["message"]["content"] == answer["choices"][0]["message"]["content"]
    assert saved["ocr"] == answer["ocr"] and saved["usage"]["completion_tokens"] == answer["usage"]["completion_tokens"]
    origin = driver.execute_script("return location.origin")
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": origin, "permissions": [
        "clipboardReadWrite", "clipboardSanitizedWrite"]})
    driver.find_element(By.ID, "copy").click()
    WebDriverWait(driver, 10).until(lambda d: "copied" in page.text_of(d, "status"))
    pasted = driver.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done('ERR ' + e))")
    assert pasted == shown


def test_a_refused_request_shows_the_servers_message_and_field_and_loses_nothing(driver, server, files, shots):
    before = page.text_of(driver, "text")
    assert before  # the previous test's answer is on the page
    driver.find_element(By.CSS_SELECTOR, "#task option[value='locate']").click()
    assert page.run(driver) == "error"
    page.shot(driver, shots, "03-refused")
    status = page.text_of(driver, "status")
    assert "(400)" in status and "field: ref" in status and "ref" in status.split("(400):")[1], status
    assert page.text_of(driver, "text") == before
    driver.find_element(By.CSS_SELECTOR, "#task option[value='ocr']").click()


def test_a_dropped_connection_says_it_may_be_retried(driver, server, shots):
    before = page.text_of(driver, "text")
    driver.set_network_conditions(offline=True, latency=0, download_throughput=-1, upload_throughput=-1)
    try:
        assert page.run(driver) == "error"
    finally:
        driver.delete_network_conditions()
    page.shot(driver, shots, "04-dropped")
    assert "may be retried" in page.text_of(driver, "status")
    assert page.text_of(driver, "text") == before
    assert page.run(driver) == "done"  # and it can be


def test_enter_in_an_option_runs_the_ocr_without_leaving_the_page(driver, server):
    driver.execute_script("window.stillHere = true; document.body.dataset.state = 'pressed'")
    driver.find_element(By.ID, "maxTokens").send_keys("\n")
    assert page.wait_state(driver, "done", "error") == "done", page.text_of(driver, "status")
    assert driver.execute_script("return window.stillHere") is True


def test_a_three_page_pdf_pages_through(driver, server, files, shots):
    page.open_page(driver, server.url)
    page.pick(driver, files["three.pdf"])
    assert page.run(driver) == "done", page.text_of(driver, "status")
    full = driver.execute_script("return state.text")
    texts = full.split("\n\n<--- Page Split --->\n\n")
    assert len(texts) == 3
    seen = []
    for number in (1, 2, 3):
        assert page.text_of(driver, "pageLabel") == f"Page {number} of 3"
        assert driver.find_element(By.ID, "pageImage").get_attribute("src").startswith("data:image/png;base64,")
        seen.append(page.text_of(driver, "text"))
        page.shot(driver, shots, f"05-pdf-page-{number}")
        nxt = driver.find_element(By.ID, "next")
        assert nxt.is_enabled() == (number < 3)
        if number < 3:
            nxt.click()
    assert seen == texts
    driver.find_element(By.ID, "prev").click()
    assert page.text_of(driver, "pageLabel") == "Page 2 of 3"


def test_an_oversized_file_is_refused_before_upload_naming_the_limit(driver, server, files, shots):
    page.open_page(driver, server.url)
    assert files["huge.png"].stat().st_size > MAX_BODY
    page.pick(driver, files["huge.png"])
    page.shot(driver, shots, "06-oversized")
    message = page.text_of(driver, "fileMsg")
    assert "max_body_bytes is 400,000 bytes" in message, message
    assert not driver.find_element(By.ID, "run").is_enabled()
    assert page.chat_posts(driver) == 0


def test_an_image_over_the_pixel_limit_is_refused_before_upload(driver, server, files, shots):
    page.open_page(driver, server.url)
    page.pick(driver, files["wide.png"])
    message = page.text_of(driver, "fileMsg")
    assert "2000x2000" in message and "max_image_pixels = 3,000,000" in message, message
    assert not driver.find_element(By.ID, "run").is_enabled()
    assert page.chat_posts(driver) == 0


def test_a_phone_width_keeps_every_control_on_screen(driver, server, shots):
    driver.set_window_size(390, 844)
    try:
        page.open_page(driver, server.url)
        page.shot(driver, shots, "07-phone")
        overflow = driver.execute_script("return document.documentElement.scrollWidth > window.innerWidth + 1")
        assert overflow is False
    finally:
        driver.set_window_size(1280, 800)
