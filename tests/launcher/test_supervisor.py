"""The restart budget over a sliding window (a fake clock and a fake stack; the real
launcher is exercised in tests/test_onboard_restarts_e2e.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from clawgate.common.supervision import down_reasons
from clawgate.launcher.stack import Stack
from clawgate.launcher.supervisor import PolicyError, RestartPolicy, Supervisor


class FakeStack:
    """Children that die when told to; restart brings them back."""

    def __init__(self, state: Path) -> None:
        self.plan = SimpleNamespace(logs=state / "logs", state_dir=state)
        self.dead: set[str] = set()
        self.restarts = 0
        self.children: dict[str, Any] = {
            name: SimpleNamespace(log_tail=lambda _n: "", process=None, alive=True)
            for name in ("envoy", "chat")
        }

    def dead_children(self) -> dict[str, int | None]:
        return {name: -9 for name in self.dead}

    def restart(self, name: str) -> None:
        self.restarts += 1
        self.dead.discard(name)


def run(tmp_path: Path, policy: RestartPolicy) -> tuple[FakeStack, Supervisor, list[float]]:
    stack = FakeStack(tmp_path)
    now = [0.0]
    fake = cast(Stack, stack)
    supervisor = Supervisor(fake, policy, lambda _: None, tmp_path / "supervisor.json",
                            clock=lambda: now[0])  # fmt: skip
    return stack, supervisor, now


def crash_and_recover(stack: FakeStack, supervisor: Supervisor, now: list[float]) -> None:
    stack.dead.add("chat")
    supervisor.tick()
    now[0] += 60  # past any backoff
    supervisor.tick()


def test_crashes_spread_over_a_long_time_never_exhaust_the_budget(tmp_path: Path) -> None:
    """The issue: the 6th crash, the first ones 20 minutes earlier, stopped everything."""
    stack, supervisor, now = run(tmp_path, RestartPolicy(max_restarts=5, window_s=300))
    for _ in range(12):
        crash_and_recover(stack, supervisor, now)
        now[0] += 240  # one crash every five minutes
    assert stack.restarts == 12 and not stack.dead
    assert down_reasons(tmp_path) == {}


def test_a_crash_loop_is_left_down_then_retried_after_the_long_backoff(tmp_path: Path) -> None:
    policy = RestartPolicy(max_restarts=2, window_s=300, backoff_s=1, down_retry_s=600)
    stack, supervisor, now = run(tmp_path, policy)
    for _ in range(2):
        crash_and_recover(stack, supervisor, now)
    stack.dead.add("chat")
    supervisor.tick()
    assert "left down" in down_reasons(tmp_path)["chat"]
    now[0] += 599
    supervisor.tick()
    assert stack.restarts == 2 and "chat" in stack.dead  # still waiting
    now[0] += 1
    supervisor.tick()
    assert stack.restarts == 3 and not stack.dead and down_reasons(tmp_path) == {}


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff_s=0.5, max_backoff_s=4)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1, 2, 4, 4, 4]


def test_bad_restart_settings_name_the_variable() -> None:
    with pytest.raises(PolicyError, match="CLAWGATE_RESTART_MAX must be a number"):
        RestartPolicy.from_env({"CLAWGATE_RESTART_MAX": "lots"})
    assert RestartPolicy.from_env({"CLAWGATE_RESTART_MAX": "3"}).max_restarts == 3
