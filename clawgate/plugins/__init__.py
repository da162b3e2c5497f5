"""The public plugin API of Clawgate: what third-party plugin packages import.

A plugin is a class derived from `Plugin`, published as a Python entry point in the group
`clawgate.plugins` and enabled by that entry point's name in the gateway config:

    plugins:
      audit: {enabled: true, onError: skip, timeoutMs: 500, settings: {path: audit.log}}

Every hook is optional and async. `before_request` may change the OpenAI request (return a
new dict, or change it in place and return None) or reject it by raising `PluginError`;
`after_response` may change a complete answer; `on_chunk` may change each streamed chunk;
`tools()` contributes tools that agents can use by name. A hook that raises anything else,
or runs past the plugin's `timeoutMs`, fails the request with an error naming the plugin
(or is skipped, with `onError: skip`); the gateway keeps serving everyone else.
"""

from __future__ import annotations

from clawgate.plugins.api import Plugin, PluginContext, PluginError
from clawgate.plugins.tools import Tool, ToolError, tool

__all__ = ["Plugin", "PluginContext", "PluginError", "Tool", "ToolError", "tool"]
