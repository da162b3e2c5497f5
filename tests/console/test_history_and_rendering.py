"""Sessions kept server-side (reload, chat service restart, switching), and model output
rendered safely: Markdown formatting, never HTML."""

from __future__ import annotations

import json
import uuid

from selenium.webdriver.common.by import By

from clawgate.launcher.stack import Stack
from tests.console.api import Rest
from tests.console.browser import Console

NO_MARKUP = "return document.querySelectorAll('#messages script, #messages img').length"
XSS_FLAG = "return window.__xss === undefined ? null : window.__xss"


def conversation(console: Console) -> list[tuple[str, str]]:
    return [
        ("user" if "user" in (m.get_attribute("class") or "") else "assistant",
         m.text if "user" in (m.get_attribute("class") or "")
         else m.find_element(By.CSS_SELECTOR, ".content").text)
        for m in console.find_all("#messages article")
    ]  # fmt: skip


def test_history_survives_reload_and_chat_restart(console: Console, console_stack: Stack) -> None:
    session = console.open_chat("llama3.2:latest")
    console.send("Remember the harbor")
    console.wait_answer_done(1)
    console.send("And the lantern")
    console.wait_answer_done(2)
    before = conversation(console)
    assert [role for role, _ in before] == ["user", "assistant", "user", "assistant"]

    console.driver.refresh()
    console.wait(lambda: conversation(console) == before, what="the history after a reload")

    console_stack.restart("chat")  # the history lives in Redis, not in the chat process
    console.open(f"/chat?session={session}")
    console.wait(lambda: conversation(console) == before, what="the history after a restart")

    # The session list switches between conversations.
    other = f"other-{uuid.uuid4().hex[:6]}"
    Rest(console_stack).append(other, {"role": "user", "content": "in the other session"})
    console.driver.refresh()
    console.wait(lambda: console.find(f"#session-list a[href='/chat?session={other}']")).click()
    console.wait(lambda: conversation(console) == [("user", "in the other session")])
    console.wait(
        lambda: console.find("#session-list a[aria-current='page']").text.startswith(other),
        what="the session list to mark the open session",
    )


def test_model_output_with_html_is_shown_as_text(console: Console, console_stack: Stack) -> None:
    console.open_chat("qwen3:32b")
    # The stand-in's answer quotes the first characters of a CJK prompt: `<script>`.
    console.send("<script>天")
    answer = console.wait_answer_done(1)
    assert "「<script>」" in answer.find_element(By.CSS_SELECTOR, ".content").text
    assert console.find("#messages article.user").text == "<script>天"

    img = '<img src=x onerror="window.__xss=1">'
    console.send(img)
    console.wait_answer_done(2)
    assert console.find_all("#messages article.user")[-1].text == img

    # A model constrained by a JSON schema emits the payload verbatim; kept in a session,
    # it is rendered by the same code as a live answer.
    rest = Rest(console_stack)
    schema = {"type": "object", "properties": {"html": {"enum": [img]}}, "required": ["html"]}
    completion = rest.ok("POST", "/chat/completions", json={
        "model": "llama3.2:latest", "messages": [{"role": "user", "content": "html please"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    })  # fmt: skip
    output = completion["choices"][0]["message"]["content"]
    assert json.loads(output) == {"html": img}
    session = f"xss-{uuid.uuid4().hex[:6]}"
    rest.append(session, {"role": "user", "content": "html please"},
                {"role": "assistant", "content": output, "model": "llama3.2:latest"})  # fmt: skip
    console.open(f"/chat?session={session}")
    console.wait(lambda: console.last_answer_text() == output, what="the stored answer")
    assert "<img src=x onerror=" in output
    assert console.js(NO_MARKUP) == 0
    assert console.js(XSS_FLAG) is None
    console.screenshot("chat-html-as-text")


def test_markdown_and_code_blocks_render_safely(console: Console, console_stack: Stack) -> None:
    markdown = "\n".join([
        "## Plan", "Use **bold**, *emphasis* and `inline <b>code</b>`.", "",
        "- first", "- second", "", "```python", "print('<img src=x onerror=alert(1)>')", "```",
        "[docs](https://example.com/docs) and [bad](javascript:alert(1))",
    ])  # fmt: skip
    session = f"md-{uuid.uuid4().hex[:6]}"
    Rest(console_stack).append(session, {"role": "user", "content": "format"},
                               {"role": "assistant", "content": markdown})  # fmt: skip
    console.open(f"/chat?session={session}")
    content = console.wait(lambda: console.find("#messages article.assistant .content"))
    assert content.find_element(By.CSS_SELECTOR, "h4").text == "Plan"
    assert content.find_element(By.CSS_SELECTOR, "strong").text == "bold"
    assert content.find_element(By.CSS_SELECTOR, "em").text == "emphasis"
    assert content.find_element(By.CSS_SELECTOR, "p code").text == "inline <b>code</b>"
    assert [li.text for li in content.find_elements(By.CSS_SELECTOR, "ul li")] == [
        "first", "second"
    ]  # fmt: skip
    code = content.find_element(By.CSS_SELECTOR, "pre code.language-python")
    assert code.text == "print('<img src=x onerror=alert(1)>')"
    links = content.find_elements(By.TAG_NAME, "a")
    assert [a.get_attribute("href") for a in links] == ["https://example.com/docs"]
    assert links[0].get_attribute("rel") == "noopener noreferrer nofollow"
    assert "bad (javascript:alert(1))" in content.text
    assert console.js(NO_MARKUP) == 0 and not content.find_elements(By.CSS_SELECTOR, "b")
