"""With API keys on, the page itself is open (static) but asks for a key once, keeps it for the tab, sends it on
every call, and shows a 401 as "key required or wrong" with the key prompt, never as a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import page
from tests.conftest import png_bytes
from tests.e2e.server import Server, served

KEY = "playground-key-7f3a"


@pytest.fixture(scope="module")
def server(tiny_v2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = str(tmp_path_factory.mktemp("browser-logs") / "server-auth.log")
    with served(tiny_v2_dir, log, "--default_max_tokens", "8", "--api_key", KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser-files") / "page.png"
    path.write_bytes(png_bytes())
    return path


def _dialog_open(driver) -> bool:
    return driver.execute_script("return document.getElementById('keyDialog').open")


def _enter_key(driver, key: str) -> None:
    field = driver.find_element(By.ID, "keyInput")
    field.clear()
    field.send_keys(key)
    driver.execute_script("document.body.dataset.state = 'pressed'")
    driver.find_element(By.CSS_SELECTOR, "#keyForm button[type=submit]").click()


def test_the_page_is_open_without_a_key(driver, server, shots):
    page.open_page(driver, server.url)
    assert page.console_errors(driver) == []
    assert "API key required" in page.text_of(driver, "server")


def test_a_wrong_key_shows_the_key_prompt_then_the_right_key_runs(driver, server, png, shots):
    page.open_page(driver, server.url)
    page.pick(driver, png)
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, 10).until(_dialog_open)  # asked once, before anything is sent
    assert page.chat_posts(driver) == 0
    _enter_key(driver, "not-the-key-123")
    assert page.wait_state(driver, "done", "error") == "error"
    WebDriverWait(driver, 10).until(_dialog_open)
    page.shot(driver, shots, "08-wrong-key")
    assert "key required or wrong" in page.text_of(driver, "keyMsg")
    assert "key required or wrong (401)" in page.text_of(driver, "status")
    _enter_key(driver, KEY)
    assert page.wait_state(driver, "done", "error") == "done", page.text_of(driver, "status")
    assert driver.execute_script("return sessionStorage.getItem('deepseek-ocr-api-key')") == KEY
    assert page.run(driver) == "done"  # the key is kept for the tab: no second prompt
    assert not _dialog_open(driver)
    page.shot(driver, shots, "09-right-key")
