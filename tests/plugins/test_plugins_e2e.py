"""Plugins through the real stack (Envoy → chat → stand-in): the shipped PII redactor and
model allow-list, a plugin that modifies the request, ones that raise or hang (each
failure named, the service still serving), the example audit package installed with pip,
and plugin time in the chat log."""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests

from tests.plugins.conftest import HANG_TIMEOUT_MS, PluginStack


def ask(text: str, model: str = "llama3.2:latest", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def tag() -> str:
    return uuid.uuid4().hex[:10]  # a fresh conversation each time: no cache hit


def upstream_body(env: PluginStack, marker: str) -> dict[str, Any]:
    for record in reversed(env.upstream_requests()):
        body: dict[str, Any] = record.get("body") or {}
        if marker in json.dumps(body):
            return body
    raise AssertionError(f"no upstream request contains {marker!r}")


def assert_error(reply: requests.Response, status: int, code: str, *words: str) -> None:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    for word in words:
        assert word in error["message"]


def assert_serving(env: PluginStack) -> None:
    reply = env.chat(ask(f"still there {tag()}"))
    assert reply.status_code == 200, reply.text


def test_pii_redactor_hides_emails_and_phone_numbers_from_the_model(env: PluginStack) -> None:
    marker = tag()
    text = f"{marker}: write to jane.doe@example.com or call +1 202-555-0143 about order 1234"
    reply = env.chat(ask(text))
    assert reply.status_code == 200, reply.text
    sent = upstream_body(env, marker)["messages"][-1]["content"]
    assert sent == f"{marker}: write to [email] or call [phone] about order 1234"


def test_model_allowlist_refuses_other_models_for_a_listed_token(env: PluginStack) -> None:
    refused = env.chat(ask(f"hi {tag()}", model="qwen3:32b"), token=env.restricted_token)
    assert_error(refused, 403, "model_not_allowed", "model-allowlist", "qwen3:8b")
    assert refused.json()["error"]["param"] == "model"
    allowed = env.chat(ask(f"hi {tag()}", model="qwen3:8b"), token=env.restricted_token)
    assert allowed.status_code == 200, allowed.text
    # Other tokens are not listed, so they keep every model.
    assert env.chat(ask(f"hi {tag()}", model="qwen3:32b")).status_code == 200


def test_plugin_that_modifies_the_request(env: PluginStack) -> None:
    marker = tag()
    reply = env.chat(ask(f"trigger-modify {marker} an apple a day", temperature=1.5))
    assert reply.status_code == 200, reply.text
    body = upstream_body(env, marker)
    assert body["messages"][-1]["content"] == f"trigger-modify {marker} an orange a day"
    assert body["temperature"] == 0.0
    # on_chunk sees (and may change) every streamed chunk.
    stream = env.chat(ask(f"plain {tag()}", stream=True))
    frames = [line for line in stream.text.split("\n\n") if line.startswith("data: {")]
    assert frames and all(json.loads(f[6:])["x_test_modified"] is True for f in frames)


def test_plugin_that_returns_an_invalid_request_is_named(env: PluginStack) -> None:
    reply = env.chat(ask(f"trigger-invalid {tag()}"))
    assert_error(reply, 500, "plugin_failed", "'test-modify'", "invalid request", "temperature")


def test_plugin_that_raises_fails_the_request_naming_it(env: PluginStack) -> None:
    for stream in (False, True):
        reply = env.chat(ask(f"trigger-raise {tag()}", stream=stream))
        assert_error(reply, 500, "plugin_failed", "'test-raise'", "before_request")
        assert "broke on purpose" not in reply.text  # details stay in the log
    assert_serving(env)


def test_plugin_with_on_error_skip_is_skipped(env: PluginStack) -> None:
    reply = env.chat(ask(f"trigger-skipped-raise {tag()}"))
    assert reply.status_code == 200, reply.text


def test_plugin_that_hangs_is_stopped_at_its_timeout(env: PluginStack) -> None:
    reply = env.chat(ask(f"trigger-hang {tag()}"))
    assert_error(reply, 504, "plugin_timeout", "'test-hang'", f"{HANG_TIMEOUT_MS} ms")
    assert_serving(env)


def test_example_audit_package_logs_every_request(env: PluginStack) -> None:
    marker = tag()
    reply = env.chat(ask(f"audit me {marker}", stream=True))
    assert reply.status_code == 200 and reply.text.endswith("data: [DONE]\n\n")
    chunks = reply.text.count("data: {")
    entries = [json.loads(line) for line in env.audit_log.read_text().splitlines()]
    streamed = [e for e in entries if e["stream"]]
    assert streamed, entries
    last = streamed[-1]
    assert last["requested_model"] == "llama3.2:latest" and last["finish_reason"] == "stop"
    assert last["token_id"] and last["token_id"] not in env.stack.token
    # The finish chunk goes out after after_response ran; every chunk before it counted.
    assert 1 <= last["chunks"] <= chunks
    chat_log = (env.stack.plan.logs / "chat.log").read_text()
    timings = [json.loads(line) for line in chat_log.splitlines() if '"plugin time"' in line]
    assert timings and "audit.after_response" in timings[-1]["plugin_ms"]
