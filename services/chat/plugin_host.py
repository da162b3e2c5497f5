"""Runs the enabled plugins' hooks, each one isolated: bounded in time, its failures turned
into an error naming the plugin (or skipped, per its `onError`), its time measured.

Plugins are found through the `clawgate.plugins` entry point group and created once per
chat process. `PluginHost.session()` gives the per-request object whose hooks the
pipeline calls; it keeps each plugin's `PluginContext` (and so its `state`) for the
whole request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from prometheus_client import Histogram

from clawgate.common.config import ConfigError
from clawgate.common.errors import ApiError
from clawgate.common.extensions import PluginSpec
from clawgate.common.logging import request_id
from clawgate.common.tokens import current_principal
from clawgate.plugins import Plugin, PluginContext, PluginError, Tool

ENTRY_POINT_GROUP = "clawgate.plugins"

log = logging.getLogger("clawgate.plugins")

PLUGIN_SECONDS = Histogram(
    "clawgate_plugin_seconds",
    "Time spent in plugin hooks, per plugin and hook.",
    ["plugin", "hook"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

JSON = dict[str, Any]


@dataclass(frozen=True)
class LoadedPlugin:
    spec: PluginSpec
    plugin: Plugin

    @property
    def name(self) -> str:
        return self.spec.name


def load_plugins(specs: Iterable[PluginSpec]) -> list[LoadedPlugin]:
    """Create every enabled plugin; a missing or broken plugin stops the start-up (unless
    its `onError` is `skip`), so a policy the operator enabled is never silently off."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    loaded: list[LoadedPlugin] = []
    for spec in specs:
        if not spec.enabled:
            continue
        try:
            if spec.name not in found:
                known = ", ".join(sorted(found)) or "none"
                raise ConfigError(
                    f"plugin {spec.name!r} is enabled in the config but no installed package "
                    f"provides it (entry point group {ENTRY_POINT_GROUP!r}; installed: {known})"
                )
            factory = found[spec.name].load()
            plugin = factory(dict(spec.settings))
            if not isinstance(plugin, Plugin):
                raise ConfigError(
                    f"plugin {spec.name!r}: the entry point must name a Plugin subclass"
                )
        except Exception as exc:
            if spec.on_error == "skip":
                log.error(
                    "plugin not loaded, skipped", extra={"plugin": spec.name, "error": str(exc)}
                )
                continue
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"plugin {spec.name!r} could not be loaded: {exc!r}") from exc
        log.info("plugin loaded", extra={"plugin": spec.name, "class": type(plugin).__name__})
        loaded.append(LoadedPlugin(spec, plugin))
    return loaded


class PluginHost:
    def __init__(self, plugins: list[LoadedPlugin]) -> None:
        self.plugins = plugins

    def tools(self) -> list[Tool]:
        """Every tool the plugins offer (a plugin whose tools() fails offers none)."""
        tools: list[Tool] = []
        for loaded in self.plugins:
            try:
                offered = list(loaded.plugin.tools())
            except Exception:
                log.exception("plugin tools() failed", extra={"plugin": loaded.name})
                continue
            tools += [
                Tool(t.name, t.description, t.parameters, t.handler, f"plugin:{loaded.name}")
                for t in offered
            ]
        return tools

    def session(
        self,
        *,
        requested_model: str,
        token_id: str | None,
        agent_id: str | None,
        stream: bool,
    ) -> PluginSession:
        contexts = {
            p.name: PluginContext(
                plugin=p.name,
                settings=p.spec.settings,
                requested_model=requested_model,
                token_id=token_id,
                token_name=principal.name if (principal := current_principal.get()) else None,
                request_id=request_id.get() or None,
                agent_id=agent_id,
                stream=stream,
                log=logging.getLogger(f"clawgate.plugins.{p.name}"),
            )
            for p in self.plugins
        }
        return PluginSession(self.plugins, contexts)


class PluginSession:
    """One request's view of the plugins."""

    def __init__(self, plugins: list[LoadedPlugin], contexts: dict[str, PluginContext]) -> None:
        self._plugins = plugins
        self._contexts = contexts
        self.seconds: dict[str, float] = defaultdict(float)  # "plugin.hook" → total

    async def before_request(self, body: JSON, validate: Callable[[JSON], JSON]) -> JSON:
        """The request after every plugin's before_request; `validate` re-checks it after
        each plugin (changed in place or returned), so no plugin can send a malformed
        request on, and a bad one is named."""
        for p in self._plugins:
            ctx = self._contexts[p.name]
            changed = await self._call(p, "before_request", p.plugin.before_request(body, ctx))
            try:
                body = validate(body if changed is None else changed)
            except ApiError as error:
                raise _failed(
                    p, "before_request", f"it returned an invalid request: {error.message}"
                ) from None
        return body

    async def after_response(self, request: JSON, response: JSON) -> JSON:
        for p in self._plugins:
            ctx = self._contexts[p.name]
            hook = p.plugin.after_response(request, response, ctx)
            changed = await self._call(p, "after_response", hook)
            if changed is not None:
                response = changed
        self.log_time()
        return response

    async def on_chunk(self, chunk: JSON) -> JSON:
        for p in self._plugins:
            changed = await self._call(
                p, "on_chunk", p.plugin.on_chunk(chunk, self._contexts[p.name])
            )
            if changed is not None:
                chunk = changed
        return chunk

    def log_time(self) -> None:
        if self.seconds:
            ms = {k: round(v * 1000, 3) for k, v in self.seconds.items()}
            log.info("plugin time", extra={"plugin_ms": ms})

    async def _call(self, p: LoadedPlugin, hook: str, call: Awaitable[JSON | None]) -> JSON | None:
        """Run one hook with the plugin's time limit; None means "no change" (also when a
        failing plugin is skipped)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(p.spec.timeout_ms / 1000):
                result = await call
            if result is not None and not isinstance(result, dict):
                raise TypeError(f"{hook} returned {type(result).__name__}, not a dict or None")
            return result
        except PluginError as rejection:  # a decision, not a failure: never skipped
            raise ApiError(
                rejection.status,
                f"Rejected by plugin '{p.name}': {rejection.message}",
                param=rejection.param,
                code=rejection.code,
            ) from None
        except TimeoutError:
            if _skipped(p, hook, "timed out"):
                return None
            raise ApiError(
                504,
                f"The plugin '{p.name}' did not finish {hook} within {p.spec.timeout_ms} ms, "
                "so the request was stopped. Try again; if it keeps happening, the operator "
                "should check this plugin (or set its onError to skip).",
                code="plugin_timeout",
            ) from None
        except Exception as exc:
            log.error(
                "plugin hook failed",
                exc_info=True,
                extra={"plugin": p.name, "hook": hook, "on_error": p.spec.on_error},
            )
            if p.spec.on_error == "skip":
                return None
            raise _failed(p, hook, f"it raised {type(exc).__name__}") from None
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[f"{p.name}.{hook}"] += elapsed
            PLUGIN_SECONDS.labels(p.name, hook).observe(elapsed)


def _skipped(p: LoadedPlugin, hook: str, what: str) -> bool:
    log.warning(
        f"plugin hook {what}",
        extra={"plugin": p.name, "hook": hook, "on_error": p.spec.on_error},
    )
    return p.spec.on_error == "skip"


def _failed(p: LoadedPlugin, hook: str, why: str) -> ApiError:
    return ApiError(
        500,
        f"The plugin '{p.name}' failed in {hook} ({why}), so the request was stopped. "
        "The chat service log has the details; the operator can fix or disable the plugin.",
        code="plugin_failed",
    )
