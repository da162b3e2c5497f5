"""Partial updates: which fields a PATCH changes, and applying them to the stored agent.

With an update mask, exactly the named fields change (a named field absent from the body
is cleared). Without one, the fields present in the body change: proto3 `optional` gives
presence, and `config.stop` counts as present when it is non-empty. `*` replaces every
settable field. Output-only fields (`id`, `owner`, `created_at`, `updated_at`) and `etag` (a
precondition, not a value) are ignored in the body and rejected in a mask.
"""

from __future__ import annotations

import re

from google.protobuf.message import Message

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.common.errors import invalid, quote
from services.agents.validation import (
    ALL_PATHS,
    CONFIG_FIELDS,
    CONFIG_PATHS,
    TOOLS_PATH,
    TOP_LEVEL_PATHS,
)

_NOT_SETTABLE = frozenset({"id", "created_at", "updated_at", "etag", "owner"})
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def changed_paths(agent: pb.Agent, mask: list[str]) -> list[str]:
    """The leaf paths (see validation.ALL_PATHS) this update changes."""
    if not mask:
        return _present_paths(agent)
    paths: list[str] = []
    for raw in mask:
        path = _snake(raw.strip())
        if path == "*":
            paths.extend(sorted(ALL_PATHS))
        elif path == "config":
            paths.extend(CONFIG_PATHS)
        elif path in ALL_PATHS:
            paths.append(path)
        elif path in _NOT_SETTABLE:
            raise invalid(
                f"update_mask names {quote(path)}, which cannot be updated"
                + (" (send it as the If-Match header or agent.etag)" if path == "etag" else ""),
                "update_mask",
            )
        else:
            raise invalid(
                f"update_mask names unknown field {quote(raw.strip())}; fields: "
                f"{', '.join(sorted(ALL_PATHS))}, config, *",
                "update_mask",
            )
    return list(dict.fromkeys(paths))


def apply(current: pb.Agent, patch: pb.Agent, paths: list[str]) -> pb.Agent:
    """A copy of `current` with the `paths` taken from `patch` (absent in patch → cleared)."""
    merged = pb.Agent()
    merged.CopyFrom(current)
    for path in paths:
        if path == "config.stop":
            merged.config.ClearField("stop")
            merged.config.stop.extend(patch.config.stop)
        elif path == TOOLS_PATH:
            merged.ClearField("tools")
            merged.tools.extend(patch.tools)
        elif path.startswith("config."):
            _copy_optional(patch.config, merged.config, path.removeprefix("config."))
        else:
            _copy_optional(patch, merged, path)
    return merged


def _present_paths(agent: pb.Agent) -> list[str]:
    paths: list[str] = [f for f in TOP_LEVEL_PATHS if agent.HasField(f)]
    if agent.HasField("config"):
        paths.extend(f"config.{f}" for f in CONFIG_FIELDS if agent.config.HasField(f))
        if agent.config.stop:
            paths.append("config.stop")
    if agent.tools:
        paths.append(TOOLS_PATH)
    return paths


def _copy_optional(source: Message, target: Message, name: str) -> None:
    if source.HasField(name):
        setattr(target, name, getattr(source, name))
    else:
        target.ClearField(name)


def _snake(path: str) -> str:
    # FieldMask's JSON form is camelCase (`config.maxTokens`); accept both spellings.
    return _CAMEL_HUMP.sub(lambda m: "_" + m.group(1).lower(), path)
