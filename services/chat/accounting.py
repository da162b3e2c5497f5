"""Token cost of one answer in USD, from the model's configured prices (per million)."""

from __future__ import annotations

from clawgate.common.config import Cost
from services.chat.providers.base import Usage


def cost_usd(cost: Cost, usage: Usage, *, cache_hit: bool) -> float:
    """Fresh answers pay input and output prices; a cache hit pays cacheRead for all of it."""
    if cache_hit:
        return usage.total_tokens * cost.cache_read / 1e6
    return (usage.prompt_tokens * cost.input + usage.completion_tokens * cost.output) / 1e6
