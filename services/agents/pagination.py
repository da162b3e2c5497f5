"""Page sizes and opaque page tokens for ListAgents.

A token is the position of the last agent returned, `(created_ms, id)`, so the next page
starts right after it even when agents are created or deleted in between.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from clawgate.common.errors import invalid
from clawgate.common.paging import page_size as page_size  # ListAgents uses it from here
from services.agents.records import looks_like_id


@dataclass(frozen=True)
class Cursor:
    created_ms: int
    id: str


def encode_token(cursor: Cursor) -> str:
    raw = json.dumps([cursor.created_ms, cursor.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> Cursor | None:
    """The cursor in `token`; None for the first page (empty token)."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_ms, agent_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise _bad_token() from None
    if type(created_ms) is not int or not isinstance(agent_id, str) or not looks_like_id(agent_id):
        raise _bad_token()
    return Cursor(created_ms, agent_id)


def _bad_token() -> Exception:
    return invalid(
        "page_token is not valid; pass the next_page_token of a previous response",
        "page_token",
        code="invalid_page_token",
    )
