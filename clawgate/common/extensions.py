"""The config sections for extensions: `plugins`, `tools` (built-ins, step limit) and
`mcpServers`. Parsed here so config.py only carries the result.

    plugins:
      pii-redactor: {enabled: true, onError: fail, timeoutMs: 1000, settings: {}}
    tools:
      maxSteps: 5
      timeoutSeconds: 30
      builtin:
        current_time: {enabled: true}
        calculator: {enabled: true}
        http_fetch: {enabled: true, allowDomains: [example.com], maxBytes: 65536,
                     timeoutSeconds: 5}
    mcpServers:
      files: {command: [python, -m, my_server], timeoutSeconds: 10, allow: [read_file]}
      remote: {url: "http://127.0.0.1:9000/mcp", timeoutSeconds: 10}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ON_ERROR = ("fail", "skip")
BUILTIN_TOOLS = ("current_time", "calculator", "http_fetch")
# OpenAI function names; MCP tools are offered as `<server>__<tool>`.
_SERVER_NAME = re.compile(r"[A-Za-z0-9-]{1,32}")


class ExtensionConfigError(ValueError):
    """Raised for a bad extension section; config.py reports it as a ConfigError."""


@dataclass(frozen=True)
class PluginSpec:
    name: str  # the entry point name
    enabled: bool = True
    on_error: Literal["fail", "skip"] = "fail"
    timeout_ms: int = 1000
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class McpServerSpec:
    name: str
    command: tuple[str, ...] = ()  # a stdio server, started by the chat service
    url: str = ""  # or a streamable-HTTP server
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    allow: tuple[str, ...] | None = None  # None: every tool the server lists


@dataclass(frozen=True)
class ToolSettings:
    max_steps: int = 5  # model calls per request when the gateway runs tools
    timeout_s: float = 30.0  # per call of a plugin or built-in tool
    builtin: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # enabled ones

    def builtin_enabled(self, name: str) -> bool:
        return name in self.builtin


@dataclass(frozen=True)
class ExtensionSettings:
    plugins: tuple[PluginSpec, ...] = ()
    tools: ToolSettings = field(default_factory=ToolSettings)
    mcp_servers: tuple[McpServerSpec, ...] = ()

    @property
    def enabled_plugins(self) -> tuple[PluginSpec, ...]:
        return tuple(p for p in self.plugins if p.enabled)


def parse_extensions(data: Mapping[str, Any]) -> ExtensionSettings:
    return ExtensionSettings(
        plugins=_plugins(data.get("plugins") or {}),
        tools=_tools(data.get("tools") or {}),
        mcp_servers=_mcp_servers(data.get("mcpServers") or {}),
    )


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ExtensionConfigError(f"{where} must be an object")
    return value


def _positive(raw: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ExtensionConfigError(f"{where}.{key} must be a positive number, got {value!r}")
    return float(value)


def _plugins(raw: Any) -> tuple[PluginSpec, ...]:
    specs = []
    for name, entry in _object(raw, "plugins").items():
        where = f"plugins.{name}"
        entry = _object(entry if entry is not None else {}, where)
        on_error = entry.get("onError", "fail")
        if on_error not in ON_ERROR:
            raise ExtensionConfigError(f"{where}.onError must be 'fail' or 'skip'")
        specs.append(
            PluginSpec(
                name=str(name),
                enabled=bool(entry.get("enabled", True)),
                on_error=on_error,
                timeout_ms=int(_positive(entry, "timeoutMs", 1000, where)),
                settings=dict(_object(entry.get("settings") or {}, f"{where}.settings")),
            )
        )
    return tuple(specs)


def _tools(raw: Any) -> ToolSettings:
    raw = _object(raw, "tools")
    builtin: dict[str, Mapping[str, Any]] = {}
    for name, entry in _object(raw.get("builtin") or {}, "tools.builtin").items():
        if name not in BUILTIN_TOOLS:
            raise ExtensionConfigError(
                f"tools.builtin.{name} is not a built-in tool; built-ins: "
                + ", ".join(BUILTIN_TOOLS)
            )
        entry = _object(entry if entry is not None else {}, f"tools.builtin.{name}")
        if entry.get("enabled", True):
            builtin[name] = entry
    max_steps = int(_positive(raw, "maxSteps", 5, "tools"))
    if max_steps < 2:
        raise ExtensionConfigError(
            "tools.maxSteps must be at least 2 (a model call that uses tools, one that answers)"
        )
    return ToolSettings(
        max_steps=max_steps,
        timeout_s=_positive(raw, "timeoutSeconds", 30.0, "tools"),
        builtin=builtin,
    )


def _mcp_servers(raw: Any) -> tuple[McpServerSpec, ...]:
    specs = []
    for name, entry in _object(raw, "mcpServers").items():
        where = f"mcpServers.{name}"
        if not _SERVER_NAME.fullmatch(str(name)):
            raise ExtensionConfigError(
                f"{where}: server names are 1-32 letters, digits or '-' (tools are offered "
                "as <server>__<tool>)"
            )
        entry = _object(entry, where)
        command = entry.get("command") or []
        url = str(entry.get("url") or "")
        if isinstance(command, str):
            command = [command]
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise ExtensionConfigError(f"{where}.command must be a list of strings")
        if bool(command) == bool(url):
            raise ExtensionConfigError(f"{where} needs either `command` (stdio) or `url`")
        allow = entry.get("allow")
        if allow is not None and (
            not isinstance(allow, list) or not all(isinstance(a, str) for a in allow)
        ):
            raise ExtensionConfigError(f"{where}.allow must be a list of tool names")
        env = _object(entry.get("env") or {}, f"{where}.env")
        specs.append(
            McpServerSpec(
                name=str(name),
                command=tuple(command),
                url=url,
                env={str(k): str(v) for k, v in env.items()},
                timeout_s=_positive(entry, "timeoutSeconds", 30.0, where),
                allow=tuple(allow) if allow is not None else None,
            )
        )
    return tuple(specs)
