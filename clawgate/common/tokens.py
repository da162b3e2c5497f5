"""Gateway tokens with names and scopes, and the principal a call runs as.

A token is configured in one of three ways:
- a plain line in the token file (or an entry of $CLAWGATE_TOKEN): an admin token named
  `admin` — what the launcher writes to `.clawgate/token`, so old setups keep working;
- a token-file line `name:scope,scope:token`, e.g. `ci-bot:chat,agents:read:cg-…`;
- config `auth.tokens: [{name, token: "${ENV}", scopes: [chat, …]}]`.

Scopes (`admin` implies every other one):
- `chat`          chat completions, models;
- `agents:read`   list and get agents (own and shared ones);
- `agents:write`  create, update and delete own agents;
- `cache:read`    cache statistics;
- `cache:purge`   purge the prompt cache (everyone's entries).
"""

from __future__ import annotations

import contextvars
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

ADMIN = "admin"
CHAT = "chat"
AGENTS_READ = "agents:read"
AGENTS_WRITE = "agents:write"
CACHE_READ = "cache:read"
METRICS_READ = "metrics:read"  # GET /metrics (Prometheus scrapers)
CACHE_PURGE = "cache:purge"
SCOPES = (ADMIN, CHAT, AGENTS_READ, AGENTS_WRITE, CACHE_READ, CACHE_PURGE, METRICS_READ)

PLAIN_TOKEN_NAME = "admin"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class TokenFormatError(ValueError):
    """A token entry cannot be used; the message names it (never the token itself)."""


@dataclass(frozen=True)
class TokenSpec:
    """One configured token: who it is and what it may do."""

    name: str
    token: str = field(repr=False)
    scopes: frozenset[str] = frozenset({ADMIN})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of the current call."""

    name: str
    token_id: str  # stable, not secret: for cache namespaces, rate limits and logs
    scopes: frozenset[str]
    # More than one token is configured, so callers are told apart (cache isolation).
    multi_tenant: bool = False

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def allows(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes

    @property
    def tenant(self) -> str | None:
        """The cache namespace of this caller: its own once several tokens exist."""
        return self.token_id if self.multi_tenant else None


# Set by the gateway interceptor for the duration of each authenticated call.
current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "clawgate_principal", default=None
)


def token_id(token: str) -> str:
    """A short stable id for a token, never the token."""
    return hashlib.sha256(b"clawgate-token:" + token.encode()).hexdigest()[:16]


def parse_scopes(raw: Iterable[str], where: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in raw if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise TokenFormatError(
            f"{where}: unknown scope {', '.join(unknown)}; use {', '.join(SCOPES)}"
        )
    if not scopes:
        raise TokenFormatError(f"{where}: give at least one scope ({', '.join(SCOPES)})")
    return scopes


def check_name(name: str, where: str) -> str:
    if not _NAME.fullmatch(name):
        raise TokenFormatError(
            f"{where}: token name {name!r} must be 1-64 letters, digits, '_', '.' or '-'"
        )
    return name


def parse_token_line(line: str, where: str) -> TokenSpec:
    """`token` (an admin token) or `name:scope,scope:token`."""
    text = line.strip()
    if text.count(":") < 2:
        return TokenSpec(PLAIN_TOKEN_NAME, text)
    name, scopes, token = text.split(":", 2)
    # Scopes contain ':' themselves: the token is what follows the last scope.
    parts = text.split(":")
    for cut in range(2, len(parts)):
        candidate = ":".join(parts[1:cut])
        if all(s.strip() in SCOPES for s in candidate.split(",")):
            scopes, token = candidate, ":".join(parts[cut:])
    if not token.strip():
        raise TokenFormatError(f"{where}: the token after `{name}:{scopes}:` is empty")
    return TokenSpec(
        check_name(name.strip(), where),
        token.strip(),
        parse_scopes(scopes.split(","), where),
    )


def format_token_line(spec: TokenSpec) -> str:
    return f"{spec.name}:{','.join(sorted(spec.scopes))}:{spec.token}"
