"""Driving the console in Debian's Chromium: start the browser, open pages, wait, look."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from clawgate.launcher.stack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
)  # fmt: skip
DESKTOP = (1280, 860)
PHONE = (375, 760)
WAIT_S = 15.0
T = TypeVar("T")


def start_chromium(profile: Path) -> WebDriver:
    """The system Chromium with a fresh profile; nothing is downloaded."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Console:
    """The console pages of one stack, in one browser."""

    def __init__(self, driver: WebDriver, stack: Stack, artifacts: Path) -> None:
        self.driver = driver
        self.stack = stack
        self.base = stack.rest_url
        self.artifacts = artifacts

    # -- navigation --------------------------------------------------------------------
    def open(self, path: str) -> None:
        self.driver.get(self.base + path)
        self.wait(lambda: self.js("return document.readyState") == "complete")

    def reset(self) -> None:
        """Blank page of the console's origin, no stored token, desktop size, light theme."""
        self.open("/console/none/x")  # any page of the origin (a 404) to reach its storage
        self.js("localStorage.clear()")
        self.size(*DESKTOP)
        self.theme("light")

    def login(self) -> None:
        self.open(f"/?token={self.stack.token}")
        self.wait_text("connection", "connected")

    def size(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)
        # The window includes no chrome in headless mode; the viewport is what was asked.
        self.wait(lambda: self.js("return window.innerWidth") == width)

    def theme(self, scheme: str) -> None:
        self.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )

    # -- chatting ----------------------------------------------------------------------
    def open_chat(self, model: str, session: str | None = None) -> str:
        """A chat page (a new session unless named) with `model` picked; the session."""
        session = session or f"t-{uuid.uuid4().hex[:8]}"
        self.open(f"/chat?session={session}")
        self.wait(lambda: self.find(f"#model option[value='{model}']"), what="the model list")
        Select(self.find("#model")).select_by_value(model)
        return session

    def send(self, text: str) -> None:
        """Types `text` in the prompt and sends it with Enter."""
        prompt = self.find("#prompt")
        prompt.send_keys(text)
        prompt.send_keys(Keys.ENTER)

    # -- reading -----------------------------------------------------------------------
    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, element_id: str) -> str:
        return str(self.js("return document.getElementById(arguments[0])?.textContent ?? ''",
                           element_id))  # fmt: skip

    def wait(self, condition: Callable[[], T], timeout: float = WAIT_S, what: str = "") -> T:
        def check(_: WebDriver) -> T | bool:
            try:
                return condition() or False
            except (NoSuchElementException, StaleElementReferenceException):
                return False

        message = what or getattr(condition, "__name__", "condition")
        result = WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            check, message=f"timed out waiting for {message}"
        )
        return cast(T, result)

    def wait_text(self, element_id: str, expected: str, timeout: float = WAIT_S) -> None:
        """Waits until the element's whole text (trimmed) is `expected`."""
        self.wait(
            lambda: self.text(element_id).strip() == expected,
            timeout,
            f"#{element_id} to read {expected!r}",
        )

    def answers(self) -> list[WebElement]:
        return self.find_all("#messages article.assistant")

    def last_answer_text(self) -> str:
        answers = self.answers()
        return answers[-1].find_element(By.CSS_SELECTOR, ".content").text if answers else ""

    def wait_answer_done(self, count: int, timeout: float = WAIT_S) -> WebElement:
        """Waits until `count` answers are shown and none is streaming."""
        self.wait(
            lambda: (
                len(self.answers()) >= count
                and not self.find_all("#messages article.streaming")
                and not self.find("#send").get_attribute("disabled")
            ),
            timeout,
            f"{count} finished answers",
        )
        return self.answers()[count - 1]

    # -- artefacts ---------------------------------------------------------------------
    def screenshot(self, name: str) -> Path:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
