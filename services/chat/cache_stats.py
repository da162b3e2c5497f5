"""Counters and hit-latency percentiles of the prompt cache (plain memory, never blocks)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

# Recent hit latencies kept for percentiles: enough for a stable p99, bounded memory.
LATENCY_SAMPLES = 2048


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class CacheCounters:
    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    stores: int = 0
    coalesced: int = 0
    hit_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def count(self, status: str, *, coalesced: bool = False) -> None:
        if status == "HIT":
            self.hits += 1
            if coalesced:
                self.coalesced += 1
        elif status == "MISS":
            self.misses += 1
        else:
            self.bypasses += 1

    def record_hit_latency(self, ms: float) -> None:
        self.hit_latency_ms.append(ms)

    def latency_percentiles(self) -> tuple[float, float]:
        ordered = sorted(self.hit_latency_ms)
        return percentile(ordered, 0.50), percentile(ordered, 0.99)
