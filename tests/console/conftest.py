"""One gateway stack and one headless Chromium for the whole console package.

The stack is the real one (Redis, the services, Envoy, one stand-in ollama worker serving
every model of the suite's config); the browser is Debian's Chromium driven through
Debian's chromedriver, with a fresh profile. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium.webdriver.chrome.webdriver import WebDriver

from clawgate.launcher.stack import Stack, local_plan
from tests.console.browser import Console, start_chromium
from tests.stack_config import STANDIN_MODELS, gateway_config

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# One stand-in plays every worker of the suite's config.
MODELS = tuple(dict.fromkeys(m for models in STANDIN_MODELS.values() for m in models))


@pytest.fixture(scope="package")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    plan = local_plan(
        tmp_path_factory.mktemp("console-stack"),
        {"main": MODELS},
        lambda urls: {
            **gateway_config({name: urls["main"] for name in STANDIN_MODELS}),
            # One gateway tool, so the agents page can offer it.
            "tools": {"builtin": {"current_time": {}}},
        },
    )
    with Stack(plan) as running:
        yield running


@pytest.fixture
def standin(console_stack: Stack) -> Iterator[Standin]:
    """The stand-in worker, reset after each test (settings, request log)."""
    worker = Standin(console_stack.standins["main"])
    yield worker
    worker.reset()


class Standin:
    def __init__(self, url: str) -> None:
        self.url = url

    def patch(self, **settings: object) -> None:
        reply = requests.patch(f"{self.url}/_standin/settings", json=settings, timeout=10)
        assert reply.status_code == 200, reply.text

    def reset(self) -> None:
        requests.post(f"{self.url}/_standin/reset", timeout=10).raise_for_status()

    def requests(self) -> list[dict[str, object]]:
        records: list[dict[str, object]] = requests.get(
            f"{self.url}/_standin/requests", timeout=10
        ).json()["requests"]
        return records


@pytest.fixture(scope="package")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console(chromium: WebDriver, console_stack: Stack) -> Iterator[Console]:
    """The browser on a blank slate: desktop size, light theme, the token stored."""
    page = Console(chromium, console_stack, ARTIFACTS)
    page.reset()
    page.login()
    yield page
