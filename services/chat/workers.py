"""Worker pool: spread load by fewest in-flight requests, remember workers that are down.

Several workers (base URLs, possibly of several providers) may serve one model. A worker
whose connection failed is avoided for DOWN_FOR_S seconds; if every worker is down, one
is tried anyway (it may be back). `in_flight()` is what the health service can read.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass

from services.chat.providers.base import Target

DOWN_FOR_S = 5.0


@dataclass
class WorkerState:
    url: str
    in_flight: int = 0
    down_until: float = 0.0
    last_pick: int = 0
    last_error: str = ""

    def is_down(self, now: float) -> bool:
        return self.down_until > now


class WorkerPool:
    def __init__(self, *, down_for_s: float = DOWN_FOR_S) -> None:
        self._workers: dict[str, WorkerState] = {}
        self._picks = itertools.count(1)
        self._down_for_s = down_for_s

    def state(self, target: Target) -> WorkerState:
        worker = self._workers.get(target.key)
        if worker is None:
            worker = self._workers[target.key] = WorkerState(target.worker)
        return worker

    def pick(self, targets: Sequence[Target], avoid: AbstractSet[str] = frozenset()) -> Target:
        """The best target: not yet tried, not down, fewest in flight, least recently used."""
        now = time.monotonic()

        def rank(target: Target) -> tuple[bool, bool, int, int]:
            state = self.state(target)
            return (target.key in avoid, state.is_down(now), state.in_flight, state.last_pick)

        chosen = min(targets, key=rank)
        self.state(chosen).last_pick = next(self._picks)
        return chosen

    def untried_alive(self, targets: Sequence[Target], tried: AbstractSet[str]) -> bool:
        """Whether failing over (without waiting) could reach another live worker."""
        now = time.monotonic()
        return any(t.key not in tried and not self.state(t).is_down(now) for t in targets)

    @contextmanager
    def lease(self, target: Target) -> Iterator[None]:
        state = self.state(target)
        state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1

    def mark_down(self, target: Target, reason: str) -> None:
        state = self.state(target)
        state.down_until = time.monotonic() + self._down_for_s
        state.last_error = reason

    def mark_up(self, target: Target) -> None:
        state = self.state(target)
        state.down_until = 0.0
        state.last_error = ""

    def states(self) -> list[WorkerState]:
        """Every worker seen so far (metrics read them at scrape time)."""
        return list(self._workers.values())

    def in_flight(self) -> dict[str, int]:
        """In-flight requests per worker URL (summed over providers sharing a URL)."""
        totals: dict[str, int] = {}
        for state in self._workers.values():
            totals[state.url] = totals.get(state.url, 0) + state.in_flight
        return totals
