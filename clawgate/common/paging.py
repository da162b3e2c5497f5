"""Page sizes of List methods (AIP-158): 0 means the default, larger than the maximum is
capped, negative is a client error."""

from __future__ import annotations

from clawgate.common.errors import invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise invalid(f"page_size must not be negative, got {requested}", "page_size")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)
