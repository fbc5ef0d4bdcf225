"""`--ui false`: /ui is a 404 (in the browser too) and the APIs answer as before."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By

from tests.e2e.server import Server, served


@pytest.fixture(scope="module")
def server(tiny_v2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = str(tmp_path_factory.mktemp("browser-logs") / "server-off.log")
    with served(tiny_v2_dir, log, "--ui", "false") as srv:
        yield srv


def test_ui_false_gives_404(driver, server, shots):
    for path in ("/ui", "/ui/app.js", "/ui/config.json"):
        assert httpx.get(server.url + path).status_code == 404, path
    assert httpx.get(server.url + "/v1/models").status_code == 200
    driver.get(server.url + "/ui")
    driver.save_screenshot(str(shots / "10-ui-off.png"))
    assert "Not Found" in driver.find_element(By.TAG_NAME, "body").text
