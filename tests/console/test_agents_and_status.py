"""The agents page (create, pick, chat, edit, stale edit, delete) and the status page."""

from __future__ import annotations

import json
import uuid

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from clawgate.launcher.stack import Stack
from tests.console.api import Rest
from tests.console.browser import Console
from tests.console.conftest import Standin

CONFLICT = "changed by someone else"


def agent_row(console: Console, name: str) -> object:
    return console.find(f"#agent-rows tr[data-agent='{name}']")


def fill(console: Console, **fields: str) -> None:
    form = console.find("#agent-form")
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)


def test_agent_create_pick_chat_edit_conflict_delete(
    console: Console, console_stack: Stack, standin: Standin
) -> None:
    name = f"helper-{uuid.uuid4().hex[:6]}"
    console.open("/agents")
    console.wait(lambda: console.find("#agent-form select[name=model] option[value='gemma3:4b']"))
    fill(console, name=name, model="gemma3:4b", description="Answers briefly",
         system_prompt="You are terse.", temperature="0.2", max_tokens="64")  # fmt: skip
    console.find("#agent-save").click()
    row = console.wait(lambda: agent_row(console, name), what="the new agent's row")
    assert "gemma3:4b" in row.text and "Answers briefly" in row.text  # type: ignore[attr-defined]
    console.screenshot("agents")

    # It is in the chat page's model picker; "Chat" opens the chat with it.
    row.find_element(By.LINK_TEXT, "Chat").click()  # type: ignore[attr-defined]
    console.wait(lambda: Select(console.find("#model")).first_selected_option.get_attribute(
        "value") == f"agent:{name}", what="the agent picked")  # fmt: skip
    assert console.find(f"#model optgroup[label=Agents] option[value='agent:{name}']")
    assert f"session=agent-{name}" in console.driver.current_url
    console.send("Who are you")
    console.wait_answer_done(1)
    upstream = standin.requests()[-1]["body"]
    assert upstream["model"] == "gemma3:4b"  # type: ignore[index]
    assert upstream["messages"][0] == {"role": "system", "content": "You are terse."}  # type: ignore[index]

    # Edit: the change is saved and listed.
    console.open("/agents")
    edit = console.wait(lambda: agent_row(console, name)).find_element(  # type: ignore[attr-defined]
        By.XPATH, ".//button[text()='Edit']")  # fmt: skip
    edit.click()
    assert console.text("agent-form-title") == f"Edit agent {name}"
    fill(console, description="Answers in one line")
    # The gateway's tools are offered; pick one, and share the agent.
    console.wait(lambda: console.find("#agent-form select[name=tools] option[value=current_time]"))
    Select(console.find("#agent-form select[name=tools]")).select_by_value("current_time")
    console.find("#agent-form input[name=shared]").click()
    console.find("#agent-save").click()
    console.wait(lambda: "Answers in one line" in agent_row(console, name).text)  # type: ignore[attr-defined]
    assert "current_time" in agent_row(console, name).text  # type: ignore[attr-defined]
    stored = Rest(console_stack).ok("GET", f"/agents/{name}")
    assert stored["tools"] == ["current_time"] and stored["shared"] is True

    # A stale edit: someone else changes the agent after this page loaded it.
    agent_row(console, name).find_element(By.XPATH, ".//button[text()='Edit']").click()  # type: ignore[attr-defined]
    Rest(console_stack).ok("PATCH", f"/agents/{name}", json={"description": "changed elsewhere"})
    fill(console, description="my stale change")
    console.find("#agent-save").click()
    console.wait(lambda: CONFLICT in console.text("agent-form-error"), what="the conflict")
    assert console.find("#agent-form-error").is_displayed()
    console.screenshot("agents-conflict")
    console.find("#agent-form-error button").click()  # "Reload agent"
    console.wait(lambda: console.find("#agent-form [name=description]").get_attribute("value")
                 == "changed elsewhere", what="the reloaded agent")  # fmt: skip
    console.find("#agent-cancel").click()

    # Delete asks first; cancelling keeps it, confirming deletes it.
    delete = ".//button[text()='Delete']"
    agent_row(console, name).find_element(By.XPATH, delete).click()  # type: ignore[attr-defined]
    console.wait(lambda: console.find("#confirm").is_displayed())
    assert name in console.text("confirm-text")
    console.find("#confirm-no").click()
    assert agent_row(console, name)
    agent_row(console, name).find_element(By.XPATH, delete).click()  # type: ignore[attr-defined]
    console.wait(lambda: console.find("#confirm").is_displayed())
    console.find("#confirm-yes").click()
    console.wait(lambda: not console.find_all(f"#agent-rows tr[data-agent='{name}']"),
                 what="the row to go")  # fmt: skip
    assert Rest(console_stack).call("GET", f"/agents/{name}").status_code == 404


def test_status_page_shows_every_part_and_refreshes(console: Console) -> None:
    console.open("/status")
    console.wait(lambda: console.text("overall") in ("ok", "degraded"), what="the report")
    cards = {c.get_attribute("data-component"): c for c in console.find_all("#services .card")}
    assert {"chat", "agents", "web", "redis"} <= set(cards)
    assert "append-only file on" in cards["redis"].text
    workers = console.find_all("#workers .card")
    assert workers
    main = workers[0].text
    for expected in ("pulled", "qwen3:32b", "loaded", "GPU memory", "not pulled", "ghost:7b"):
        assert expected in main, main
    console.screenshot("status")
    first = console.text("checked-at")
    console.wait(lambda: console.text("checked-at") != first, what="a refresh")


def test_status_page_lists_batches_with_progress(console: Console, console_stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {console_stack.token}"}
    base = console_stack.rest_url + "/api/v1"
    lines = [
        {"custom_id": f"s-{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "qwen3:32b", "messages": [{"role": "user", "content": f"q {i}"}],
                  "max_tokens": 4}}
        for i in range(2)
    ]  # fmt: skip
    upload = requests.post(
        base + "/files", headers=headers, timeout=30, data={"purpose": "batch"},
        files={"file": ("in.jsonl", "\n".join(json.dumps(x) for x in lines), "application/jsonl")},
    )  # fmt: skip
    assert upload.status_code == 200, upload.text
    batch = requests.post(
        base + "/batches", headers=headers, timeout=30,
        json={"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions",
              "completion_window": "24h"},
    )  # fmt: skip
    assert batch.status_code == 200, batch.text
    batch_id = batch.json()["id"]
    console.open("/status")
    item = console.wait(
        lambda: next((b for b in console.find_all("#batches .card")
                      if b.get_attribute("data-batch") == batch_id
                      and "2 of 2 lines" in b.text), None),
        timeout=60,  # the batch runs at low priority; the page refreshes every 3 s
        what="the batch, finished, in the list",
    )  # fmt: skip
    assert item is not None and "completed" in item.text
    assert "not finished" in console.text("batch-summary")
