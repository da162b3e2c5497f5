"""The chat page in Chromium against the real stack: streaming over SSE, stop cancelling
the upstream generation, reasoning, x-cache, the four failures told apart, the keyboard."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from clawgate.launcher.stack import Stack
from tests.console.browser import PHONE, Console
from tests.console.conftest import Standin

TEXT_LENGTH = """
const answer = [...document.querySelectorAll('#messages article.assistant')].pop();
if (!answer) return 0;
return answer.querySelector('.content').textContent.length
  + answer.querySelector('.reasoning .text').textContent.length;
"""


def test_answer_streams_token_by_token_with_reasoning_and_x_cache(
    console: Console, standin: Standin
) -> None:
    standin.patch(token_delay_ms=60)
    console.open_chat("qwen3:32b")
    console.send("Tell me about rivers")
    # The text grows while the answer streams: sample it until the answer is finished.
    samples: list[int] = []
    shots = 0
    while console.find("#send").get_attribute("disabled") or not console.answers():
        samples.append(console.js(TEXT_LENGTH))
        if shots < 2 and samples[-1] > 0 and len(set(samples)) > 2 * shots + 1:
            shots += 1
            console.screenshot(f"chat-streaming-{shots}")
    answer = console.wait_answer_done(1)
    final = console.js(TEXT_LENGTH)
    growing = sorted(set(s for s in samples if 0 < s < final))
    assert len(growing) >= 3, f"the answer did not grow visibly: {samples}"
    assert samples == sorted(samples), "text only ever grows"

    assert answer.find_element(By.CSS_SELECTOR, ".content").text.startswith("About Tell me")
    reasoning = answer.find_element(By.CSS_SELECTOR, "details.reasoning")
    assert reasoning.is_displayed() and reasoning.get_attribute("open") is None  # collapsed
    reasoning.find_element(By.TAG_NAME, "summary").click()
    console.wait(lambda: reasoning.get_attribute("open") is not None)
    assert reasoning.find_element(By.CSS_SELECTOR, ".text").text.startswith("Okay, the user")
    assert answer.find_element(By.CSS_SELECTOR, ".cache").text == "x-cache: MISS"
    console.screenshot("chat-answer")

    # The same first question in another session is answered from the prompt cache.
    console.open_chat("qwen3:32b")
    console.send("Tell me about rivers")
    again = console.wait_answer_done(1)
    assert again.find_element(By.CSS_SELECTOR, ".cache").text == "x-cache: HIT"


def test_stop_button_cancels_the_upstream_generation(
    console: Console, standin: Standin, console_stack: Stack
) -> None:
    standin.patch(token_delay_ms=300)
    session = console.open_chat("llama3.2:latest")
    console.send("Write a long story")
    console.wait(lambda: console.last_answer_text(), what="the first tokens")
    console.find("#stop").click()
    answer = console.wait_answer_done(1)
    assert answer.find_element(By.CSS_SELECTOR, ".finish").text == "stopped"
    # The stand-in (the "ollama" upstream) saw its request cancelled.
    console.wait(
        lambda: [r["status"] for r in standin.requests()] == ["cancelled"],
        what="the stand-in to log the cancellation",
    )
    kept = console.last_answer_text()
    console.driver.refresh()
    console.wait(lambda: console.last_answer_text() == kept, what="the stopped answer to be kept")
    assert console.find("#messages .finish").text == "stopped"
    console.wait(lambda: session in console.find("#session-list").text, what="the session list")


def test_keyboard_and_phone_width(console: Console, standin: Standin) -> None:
    console.size(*PHONE)
    standin.patch(token_delay_ms=300)
    console.open_chat("llama3.2:latest")
    assert console.js("return document.documentElement.scrollWidth") <= PHONE[0]
    prompt = console.find("#prompt")
    prompt.send_keys("first line")
    prompt.send_keys(Keys.SHIFT, Keys.ENTER)
    prompt.send_keys("second line")
    assert prompt.get_attribute("value") == "first line\nsecond line"  # Shift+Enter: no send
    assert not console.find_all("#messages article.user")
    prompt.send_keys(Keys.ENTER)  # Enter sends
    console.wait(lambda: console.last_answer_text(), what="the first tokens")
    user = console.find("#messages article.user")
    assert user.text == "first line\nsecond line"
    console.screenshot("chat-phone")
    prompt.send_keys(Keys.ESCAPE)  # Esc stops
    answer = console.wait_answer_done(1)
    assert answer.find_element(By.CSS_SELECTOR, ".finish").text == "stopped"
    assert console.js("return document.documentElement.scrollWidth") <= PHONE[0]
    for page in ("/agents", "/status"):
        console.open(page)
        console.wait_text("connection", "connected")
        assert console.js("return document.documentElement.scrollWidth") <= PHONE[0], page


def test_the_four_common_failures_are_told_apart(
    console: Console, standin: Standin, console_stack: Stack
) -> None:
    def failure_after_send(text: str) -> tuple[str, str]:
        before = len(console.find_all("#messages .error"))
        console.send(text)
        console.wait(lambda: len(console.find_all("#messages .error")) > before, what="an error")
        box = console.find_all("#messages .error")[-1]
        return str(box.get_attribute("data-kind")), box.text

    console.open_chat("ghost:7b")  # configured, not pulled on the worker
    kind, text = failure_after_send("hello ghost")
    assert kind == "model" and "Model unavailable" in text and "model_not_pulled" in text

    Select(console.find("#model")).select_by_value("llama3.2:latest")
    standin.patch(fail="oom", fail_times=1)
    kind, text = failure_after_send("hello memory")
    assert kind == "memory" and "GPU memory" in text

    console.js("localStorage.setItem('clawgate.token', 'cg-wrong')")
    kind, text = failure_after_send("hello token")
    assert kind == "auth" and "gateway token mismatch" in text
    # Nothing was stored, so the question is handed back rather than lost.
    assert console.find("#prompt").get_attribute("value") == "hello token"
    assert "hello token" not in console.find("#messages").text
    console.find("#prompt").clear()
    console.js("localStorage.setItem('clawgate.token', arguments[0])", console_stack.token)

    console_stack.stop("envoy")
    try:
        kind, text = failure_after_send("hello gateway")
        assert kind == "unreachable" and "Gateway not reachable" in text
        console.screenshot("chat-errors")
    finally:
        console_stack.start("envoy")


def test_dark_and_light_follow_the_system(console: Console) -> None:
    console.open("/chat?session=main")
    background = "return getComputedStyle(document.body).backgroundColor"
    light = console.js(background)
    console.theme("dark")
    console.wait(lambda: console.js(background) != light, what="the dark theme")
    dark = console.js(background)
    assert sum(int(c) for c in dark[4:-1].split(",")) < sum(int(c) for c in light[4:-1].split(","))
    console.screenshot("chat-dark")
