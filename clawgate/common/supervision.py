"""The launcher's view of its children, shared through `<state_dir>/supervisor.json`.

`clawgate onboard` writes it whenever a child changes state; the health service reads it
to say *why* a component it finds down is down (e.g. "left down after 6 crashes in 5 min;
next try at …"). A note is only used for a component the health check itself finds down,
so a stale file can never make a working part look broken.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATUS_FILE = "supervisor.json"


def status_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / STATUS_FILE


def write_status(path: Path, children: dict[str, dict[str, Any]]) -> None:
    """Replace the file atomically, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"children": children}, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def read_status(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    children = data.get("children") if isinstance(data, dict) else None
    return children if isinstance(children, dict) else {}


def down_reasons(state_dir: str | Path) -> dict[str, str]:
    """Child name → why the launcher has it down, for children it left down or is
    restarting."""
    return {
        name: str(child.get("reason") or child.get("state"))
        for name, child in read_status(status_path(state_dir)).items()
        if isinstance(child, dict) and child.get("state") in ("down", "restarting")
    }
