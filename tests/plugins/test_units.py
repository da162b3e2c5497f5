"""The pure parts of plugins and tools: the calculator (no eval), the PII patterns, the
`@tool` schema, the extension config, plugin loading and argument checks."""

from __future__ import annotations

import io
from typing import Any, Literal

import pytest

from clawgate.cli import main
from clawgate.common.auth import Authenticator
from clawgate.common.config import ConfigError, load_config
from clawgate.common.errors import ApiError
from clawgate.common.extensions import PluginSpec, ToolSettings
from clawgate.plugins import PluginContext, Tool, tool
from clawgate.plugins.builtin.pii import PiiRedactor
from services.chat.extensions import Extensions
from services.chat.pipeline import CallOptions
from services.chat.plugin_host import PluginHost, load_plugins
from services.chat.request import ChatRequest
from services.chat.tools.calculator import CalculatorError, evaluate
from services.chat.tools.registry import ToolRegistry


@pytest.mark.parametrize(
    ("expression", "value"),
    [("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("2 ** 10", 1024), ("sqrt(16) + abs(-2)", 6.0),
     ("7 // 2 + 7 % 2", 4), ("round(pi, 2)", 3.14), ("-3 + +1", -2)],
)  # fmt: skip
def test_calculator_computes(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('true')", "unsupported element"),
        ("().__class__", "unsupported element"),
        ("open('/etc/passwd')", "unsupported element"),
        ("x + 1", "unsupported element"),
        ("9 ** 9 ** 9", "exponents above"),
        ("1 / 0", "cannot compute"),
        ("2 +", "not a valid expression"),
        ("1" * 600, "longer than"),
        ("10.0 ** 400", "cannot compute"),
        ("9.0 ** 200 * 9.0 ** 200", "too large"),
    ],
)
def test_calculator_refuses_what_it_does_not_compute(expression: str, reason: str) -> None:
    with pytest.raises(CalculatorError, match=reason):
        evaluate(expression)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("mail jane.doe+x@mail.example.co.uk now", "mail [email] now"),
        ("call +33 6 12 34 56 78.", "call [phone]."),
        ("or (555) 123-4567 or 555.123.4567", "or [phone] or [phone]"),
        ("+12025550143", "[phone]"),
        ("order 1234 in 2026, 12 items at 3.50", "order 1234 in 2026, 12 items at 3.50"),
    ],
)
def test_pii_patterns(text: str, redacted: str) -> None:
    assert PiiRedactor({}).redact(text) == redacted


async def test_pii_redactor_only_touches_the_configured_roles() -> None:
    request: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "support@example.com"},
            {"role": "user", "content": [{"type": "text", "text": "me@example.com"}]},
        ],
    }
    ctx = PluginContext("pii", {}, "m", None, None, None, False, __import__("logging").getLogger())
    await PiiRedactor({}).before_request(request, ctx)
    assert request["messages"][0]["content"] == "support@example.com"
    assert request["messages"][1]["content"][0]["text"] == "[email]"


def test_tool_decorator_builds_the_schema_from_the_signature() -> None:
    @tool
    async def weather(city: str, days: int = 1, unit: Literal["C", "F"] = "C") -> str:
        """Weather in a city.

        Longer text that the model does not need."""
        return city

    assert isinstance(weather, Tool)
    assert weather.description == "Weather in a city."
    assert weather.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"enum": ["C", "F"]},
        },
        "additionalProperties": False,
        "required": ["city"],
    }


async def test_arguments_are_checked_before_the_tool_runs() -> None:
    ran: list[dict[str, Any]] = []

    @tool(name="count")
    def counter(n: int) -> int:
        ran.append({"n": n})
        return n + 1

    registry = ToolRegistry([counter])
    assert (await registry.run(counter, '{"n": 1}')).text == "2"
    for bad, why in [
        ('{"n": "one"}', "invalid arguments at n: 'one' is not of type 'integer'"),
        ("{}", "'n' is a required property"),
        ('{"n": 1, "m": 2}', "Additional properties are not allowed"),
        ("[1]", "must be a JSON object"),
        ("{n: 1}", "not valid JSON"),
    ]:
        result = await registry.run(counter, bad)
        assert not result.ok and why in result.text
    assert ran == [{"n": 1}]


def test_extension_config_errors_say_what_to_fix(tmp_path: Any) -> None:
    cases = {
        "plugins:\n  x: {onError: explode}\n": "plugins.x.onError must be 'fail' or 'skip'",
        "tools:\n  builtin:\n    shell: {}\n": "tools.builtin.shell is not a built-in tool",
        "mcpServers:\n  a: {timeoutSeconds: 5}\n": "mcpServers.a needs either `command`",
        "mcpServers:\n  a_b: {url: 'http://x'}\n": "server names are 1-32 letters",
        "plugins:\n  x: {timeoutMs: 0}\n": "plugins.x.timeoutMs must be a positive number",
        "tools:\n  maxSteps: 1\n": "tools.maxSteps must be at least 2",
    }
    for text, message in cases.items():
        path = tmp_path / "c.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            load_config(str(path), env={})


def test_an_enabled_plugin_that_is_not_installed_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="no installed package provides it"):
        load_plugins([PluginSpec("not-installed")])
    assert load_plugins([PluginSpec("not-installed", on_error="skip")]) == []
    assert load_plugins([PluginSpec("not-installed", enabled=False)]) == []
    (loaded,) = load_plugins([PluginSpec("pii-redactor")])
    assert isinstance(loaded.plugin, PiiRedactor)


def test_token_id_command_prints_the_id_plugins_use(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("cg-some-token\n"))
    assert main(["token-id"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == Authenticator(()).token_id("cg-some-token") and "cg-some" not in printed


async def test_an_agent_whose_tool_is_gone_gets_a_clear_error() -> None:
    extensions = Extensions(PluginHost([]), ToolRegistry([]), ToolSettings())
    request = ChatRequest(
        body={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        requested_model="agent:helper",
        agent_tools=("vanished",),
    )
    with pytest.raises(ApiError) as caught:
        await extensions.prepare(request, CallOptions())
    assert caught.value.status == 400 and caught.value.code == "agent_tool_not_found"
    assert "'agent:helper'" in caught.value.message and "'vanished'" in caught.value.message
