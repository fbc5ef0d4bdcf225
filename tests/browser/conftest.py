"""Browser tier: headless Debian Chromium driven by Selenium against real servers (``tests/e2e/server.py``).

Chromium and chromedriver come from apt (``make install`` and ``.ci/run`` install them where missing); a machine
without them fails here with that instruction rather than skipping. Screenshots of every step go to
``$BROWSER_SHOTS_DIR`` or ``<pytest basetemp>/browser-shots`` (printed at the end of the session)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_BINARY") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Selenium Manager would try to download a browser or a driver: everything here is local.
os.environ.setdefault("SE_OFFLINE", "true")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,800")


_SHOTS: list[Path] = []


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $BROWSER_SHOTS_DIR, else ``browser-shots`` in pytest's temporary folder."""
    folder = Path(os.environ.get("BROWSER_SHOTS_DIR") or tmp_path_factory.getbasetemp() / "browser-shots")
    folder.mkdir(parents=True, exist_ok=True)
    _SHOTS.append(folder)
    return folder


def pytest_terminal_summary(terminalreporter) -> None:
    for folder in _SHOTS:
        terminalreporter.write_line(f"browser screenshots: {folder} ({len(list(folder.glob('*.png')))} files)")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium per module, with a fresh profile."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.fail(f"{missing} not found: install them with `apt-get install -y chromium chromium-driver` "
                    "(`make install` does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    downloads = tmp_path_factory.mktemp("downloads")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    browser.set_page_load_timeout(30)
    browser.downloads = downloads  # where the page's Download buttons write
    try:
        yield browser
    finally:
        browser.quit()
