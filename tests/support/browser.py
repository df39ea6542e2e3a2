"""Headless Chromium through WebDriver (Debian's ``chromium`` and ``chromium-driver``, installed
by streaming/tools/install-browser.sh), and a check that a watch page really plays."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def available() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


@contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
        "--window-size=1280,800",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until_played(browser: Any, seconds: float = 1.0, timeout: float = 60) -> float:
    """Waits until the watch page's player has played ``seconds``; returns its current time.
    Fails with the player's status line when it does not."""
    deadline = time.monotonic() + timeout
    while True:
        state = browser.execute_script(
            "return {t: document.getElementById('video').currentTime, e: window.videoplatformPlayer.error}"
        )
        assert not state["e"], state["e"]
        if state["t"] > seconds:
            return float(state["t"])
        assert time.monotonic() < deadline, browser.find_element("id", "status").text
        time.sleep(0.25)
