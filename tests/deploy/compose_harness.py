"""A compose project run with podman-compose for the smoke suite, torn down without a trace.

Podman on Debian 12 (4.3) runs healthchecks from systemd timers; CI has no systemd, so
`HealthTicker` runs every container's healthcheck itself (what the timer would do), and
`wait_healthy` plays `up --wait` (podman-compose only waits for health from podman 4.6).
`depends_on` conditions are therefore not enforced here: the services must (and do) cope
with dependencies that come up later, as they must on any restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LABEL = "io.podman.compose.project"


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def podman_compose() -> list[str]:
    """podman-compose from the project venv (pip), else from PATH."""
    local = ROOT / ".venv" / "bin" / "podman-compose"
    found = str(local) if local.exists() else shutil.which("podman-compose")
    if not found:
        raise RuntimeError("podman-compose not found: `.venv/bin/pip install podman-compose`")
    return [found]


@dataclass
class ComposeProject:
    name: str
    files: Sequence[str]
    env: Mapping[str, str]
    scale: dict[str, int] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 300) -> str:
        cmd = [*podman_compose(), "--in-pod", "false", "-p", self.name]
        for f in self.files:
            cmd += ["-f", f]
        result = subprocess.run(
            [*cmd, *args], cwd=ROOT, env={**os.environ, **self.env},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"podman-compose {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def up(self, **scale: int) -> None:
        self.scale.update(scale)
        flags = [f"--scale={svc}={n}" for svc, n in self.scale.items()]
        self.compose("up", "-d", *flags)

    def containers(self) -> list[dict[str, object]]:
        """`podman ps -a` rows of this project's containers."""
        out = podman("ps", "-a", "--format", "json", "--filter", f"label={LABEL}={self.name}")
        rows: list[dict[str, object]] = json.loads(out or "[]")
        return rows

    def names(self, service: str | None = None) -> list[str]:
        rows = self.containers()
        if service is not None:
            rows = [r for r in rows if _labels(r).get("com.docker.compose.service") == service]
        return sorted(str(_names(r)) for r in rows)

    def health(self) -> dict[str, str]:
        """Container name → health status ('healthy', 'starting', 'unhealthy')."""
        names = self.names()
        if not names:
            return {}
        inspected = json.loads(podman("inspect", *names))
        return {
            c["Name"].lstrip("/"): (c["State"].get("Health") or c["State"].get("Healthcheck") or {})
            .get("Status", "none") if c["State"]["Running"] else f"exited({c['State']['ExitCode']})"
            for c in inspected
        }  # fmt: skip

    def wait_healthy(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            health = self.health()
            if health and all(s == "healthy" for s in health.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy after {timeout_s:.0f}s: {health}\n{self.logs()}")
            time.sleep(1)

    def exec(self, container: str, *cmd: str) -> str:
        return podman("exec", container, *cmd)

    def inspect(self, container: str) -> dict[str, Any]:
        inspected: list[dict[str, Any]] = json.loads(podman("inspect", container))
        return inspected[0]

    def log(self, container: str) -> str:
        result = subprocess.run(
            ["podman", "logs", container], capture_output=True, text=True, timeout=60, check=False
        )
        return result.stdout + result.stderr

    def logs(self, tail: int = 15) -> str:
        parts = []
        for name in self.names():
            out = podman("logs", "--tail", str(tail), name, check=False, timeout=30)
            parts.append(f"--- {name}\n{out}")
        return "\n".join(parts)

    def down(self) -> None:
        """`compose down -v`, then remove by label whatever it missed (podman-compose's down
        knows only the file's replica counts, not those added with --scale)."""
        with contextlib.suppress(RuntimeError):  # the sweep below removes what is left
            self.compose("down", "-v", "-t", "5")
        self.sweep()

    def sweep(self) -> None:
        ids = podman("ps", "-aq", "--filter", f"label={LABEL}={self.name}", check=False).split()
        if ids:
            # --depend: compose's depends_on makes podman refuse to remove a dependency first.
            podman("rm", "-f", "--depend", "-t", "2", *ids, check=False)
        for volume in self.leftovers()["volumes"]:
            podman("volume", "rm", "-f", volume, check=False)
        for network in self.leftovers()["networks"]:
            podman("network", "rm", "-f", network, check=False)

    def leftovers(self) -> dict[str, list[str]]:
        """What of this project still exists: must be empty after down()."""
        label = f"label={LABEL}={self.name}"
        volumes = podman("volume", "ls", "-q", "--filter", label, check=False).split()
        networks = podman("network", "ls", "--format", "{{.Name}}", check=False).split()
        pods = podman("pod", "ls", "--format", "{{.Name}}", check=False).split()
        return {
            "containers": podman("ps", "-aq", "--filter", label, check=False).split(),
            "volumes": volumes,
            "networks": [n for n in networks if n.startswith(f"{self.name}_")],
            "pods": [p for p in pods if p == f"pod_{self.name}"],
        }


def _labels(row: Mapping[str, object]) -> dict[str, str]:
    labels = row.get("Labels") or {}
    return dict(labels) if isinstance(labels, dict) else {}


def _names(row: Mapping[str, object]) -> str:
    names = row.get("Names")
    return str(names[0]) if isinstance(names, list) else str(names)


class HealthTicker:
    """Runs `podman healthcheck run` on every container of a project every `period_s`,
    standing in for podman's systemd healthcheck timers on machines without systemd."""

    def __init__(self, project: ComposeProject, period_s: float = 2.0) -> None:
        self._project = project
        self._period = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-ticker", daemon=True)

    def __enter__(self) -> HealthTicker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # All at once: one slow check (a Python probe on a busy machine) must not
                # delay the others.
                checks = [
                    subprocess.Popen(
                        ["podman", "healthcheck", "run", name],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    for name in self._project.names()
                ]
                for check in checks:
                    check.wait(timeout=60)
            except (RuntimeError, subprocess.SubprocessError, ValueError):
                pass  # containers come and go (scale, teardown); try again next tick
            self._stop.wait(self._period)


def publish_port() -> int:
    """A free loopback port below the ephemeral range (32768–60999 here), where no
    outgoing connection can be holding it as its source port by the time podman binds."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")
