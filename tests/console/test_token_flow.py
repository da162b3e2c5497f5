"""The gateway token in the browser, as users know it: the exact refusal texts, `/?token=`
stored and taken out of the address bar, later visits without it, logout."""

from __future__ import annotations

from clawgate.common.auth import MISMATCH_MESSAGE, MISSING_MESSAGE
from tests.console.browser import Console

STORED = "return localStorage.getItem('clawgate.token')"


def test_without_token_the_page_says_missing_and_how_to_connect(console: Console) -> None:
    console.reset()
    console.open("/chat?session=main")
    console.wait_text("connection", f"disconnected (1008): {MISSING_MESSAGE}")
    help_box = console.find("#token-help")
    assert help_box.is_displayed()
    assert "clawgate token" in help_box.text and "/?token=" in help_box.text
    console.screenshot("token-missing")


def test_token_in_url_is_stored_removed_from_the_address_bar_and_remembered(
    console: Console,
) -> None:
    console.reset()
    token = console.stack.token
    console.open(f"/?token={token}")
    console.wait_text("connection", "connected")
    assert "token" not in console.driver.current_url
    assert console.driver.current_url == console.base + "/"
    assert console.js(STORED) == token
    assert token not in console.js("return history.state === null ? '' : String(history.state)")

    # Later visits need no token in the URL, including after a reload.
    console.open("/chat?session=main")
    console.wait_text("connection", "connected")
    console.driver.refresh()
    console.wait_text("connection", "connected")
    assert not console.find("#token-help").is_displayed()


def test_wrong_token_says_mismatch_and_logout_forgets_the_token(console: Console) -> None:
    console.open("/?token=cg-not-the-gateway-token")
    console.wait_text("connection", f"disconnected (1008): {MISMATCH_MESSAGE}")
    console.screenshot("token-mismatch")
    logout = console.find("#logout")
    assert logout.is_displayed()
    logout.click()
    console.wait_text("connection", f"disconnected (1008): {MISSING_MESSAGE}")
    assert console.js(STORED) is None


def test_token_pasted_in_the_form_connects(console: Console) -> None:
    console.reset()
    console.open("/status")
    console.wait_text("connection", f"disconnected (1008): {MISSING_MESSAGE}")
    console.find("#token-input").send_keys(console.stack.token)
    console.find("#token-form button").click()
    console.wait_text("connection", "connected")
    assert console.js(STORED) == console.stack.token
