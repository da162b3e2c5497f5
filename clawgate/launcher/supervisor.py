"""Restarts of the stack's children: a budget over a sliding window, with backoff.

A child that dies is restarted after an exponential backoff (base · 2^(crashes-1), capped).
When it has crashed more than `max_restarts` times within `window_s`, it is left down —
the other parts keep serving, and health says why — and tried again after `down_retry_s`.
A child that stays up long enough sees its old crashes slide out of the window. Nothing
here ever stops the gateway: only Ctrl-C (or SIGTERM) does.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from clawgate.common.supervision import write_status
from clawgate.launcher.processes import StartError
from clawgate.launcher.stack import Stack


class PolicyError(ValueError):
    """A restart setting cannot be used; the message names it."""


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 300.0
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    down_retry_s: float = 600.0

    # Environment variable → field (launcher settings; services never read them).
    ENV: ClassVar[dict[str, str]] = {
        "CLAWGATE_RESTART_MAX": "max_restarts",
        "CLAWGATE_RESTART_WINDOW_S": "window_s",
        "CLAWGATE_RESTART_BACKOFF_S": "backoff_s",
        "CLAWGATE_RESTART_MAX_BACKOFF_S": "max_backoff_s",
        "CLAWGATE_RESTART_DOWN_RETRY_S": "down_retry_s",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RestartPolicy:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, attr in cls.ENV.items():
            if name not in env:
                continue
            try:
                number = float(env[name])
            except ValueError:
                raise PolicyError(f"{name} must be a number, got {env[name]!r}") from None
            if number < 0 or (attr == "window_s" and number == 0):
                raise PolicyError(f"{name} must be positive, got {env[name]!r}")
            values[attr] = int(number) if attr == "max_restarts" else number
        return cls(**values)

    def backoff(self, crashes: int) -> float:
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** max(0, crashes - 1)))


@dataclass
class ChildRecord:
    crashes: deque[float] = field(default_factory=deque)  # monotonic times in the window
    state: str = "running"  # running | restarting | down
    next_try: float | None = None  # monotonic time of the next start attempt
    reason: str = ""


class Supervisor:
    """Called every tick by `clawgate onboard`; says what it does through `say`."""

    def __init__(
        self,
        stack: Stack,
        policy: RestartPolicy,
        say: Callable[[str], None],
        status_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stack = stack
        self._policy = policy
        self._say = say
        self._status_file = status_file
        self._clock = clock
        self._children: dict[str, ChildRecord] = {}

    def tick(self) -> None:
        now = self._clock()
        for name, code in self._stack.dead_children().items():
            record = self._children.setdefault(name, ChildRecord())
            if record.state == "running":
                self._say(f"!! {name} exited with code {code}; last log lines:")
                self._say(self._stack.children[name].log_tail(15))
                self._crashed(name, record, now, f"exited with code {code}")
        for name, record in self._children.items():
            if record.state != "running" and record.next_try is not None and now >= record.next_try:
                self._try_start(name, record)
        self.publish()

    def _crashed(self, name: str, record: ChildRecord, now: float, why: str) -> None:
        policy = self._policy
        record.crashes.append(now)
        while record.crashes and record.crashes[0] < now - policy.window_s:
            record.crashes.popleft()
        count = len(record.crashes)
        if count > policy.max_restarts:
            record.state, record.next_try = "down", now + policy.down_retry_s
            record.reason = (
                f"left down: {why}; crashed {count} times in {policy.window_s:g}s; "
                f"next try in {policy.down_retry_s:g}s (logs: {self._stack.plan.logs})"
            )
            self._say(f"!! {name} keeps failing: {record.reason}. The other parts keep serving.")
            return
        delay = policy.backoff(count)
        record.state, record.next_try = "restarting", now + delay
        record.reason = f"restarting after a crash ({why}; {count} in {policy.window_s:g}s)"
        self._say(f".. restarting {name} in {delay:g}s ({count}/{policy.max_restarts} in window)")

    def _try_start(self, name: str, record: ChildRecord) -> None:
        was_down = record.state == "down"
        try:
            self._stack.restart(name)
        except StartError as err:
            first_line = str(err).splitlines()[0] if str(err) else "did not start"
            self._say(f"!! could not restart {name}: {first_line}")
            self._crashed(name, record, self._clock(), first_line)
            return
        record.state, record.next_try, record.reason = "running", None, ""
        self._say(f".. {name} is back" + (" after being left down" if was_down else ""))

    def publish(self) -> None:
        """Write every child's state for the health service (and tests)."""
        if self._status_file is None:
            return
        children: dict[str, dict[str, Any]] = {}
        for name, child in self._stack.children.items():
            record = self._children.get(name, ChildRecord())
            pid = child.process.pid if child.process is not None and child.alive else None
            children[name] = {
                "state": record.state,
                "pid": pid,
                "reason": record.reason,
                "crashes_in_window": len(record.crashes),
            }
        write_status(self._status_file, children)
