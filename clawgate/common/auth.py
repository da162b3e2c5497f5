"""Gateway tokens: where they come from and how a call proves it has one.

Tokens come from $CLAWGATE_TOKEN (comma-separated) or from the file named by
$CLAWGATE_TOKEN_FILE (one per line; the launcher writes `<state_dir>/token`). They are
compared in constant time and never logged.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from clawgate.common.errors import ApiError

MISSING_MESSAGE = "unauthorized: gateway token missing"
MISMATCH_MESSAGE = "unauthorized: gateway token mismatch"
NO_TOKENS_MESSAGE = "unauthorized: the gateway has no token configured"


class AuthResult(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    MISMATCH = "mismatch"


def generate_token() -> str:
    return "cg-" + secrets.token_urlsafe(32)


def read_token_file(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]


def ensure_token_file(path: Path) -> str:
    """Return the first token in `path`, creating the file with a new token if needed."""
    if path.is_file():
        tokens = read_token_file(path)
        if tokens:
            return tokens[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    token = generate_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The token of an `authorization: Bearer <token>` header, or None."""
    for key, value in metadata:
        if key.lower() != "authorization":
            continue
        text = value.decode() if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return None


class Authenticator:
    """Checks bearer tokens against the configured set."""

    def __init__(self, tokens: Iterable[str]) -> None:
        # Keep digests, not tokens: equal-length compare, nothing printable in memory dumps.
        self._digests = [hashlib.sha256(t.encode()).digest() for t in tokens if t]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Authenticator:
        env = os.environ if env is None else env
        tokens = [t.strip() for t in env.get("CLAWGATE_TOKEN", "").split(",") if t.strip()]
        path = env.get("CLAWGATE_TOKEN_FILE")
        if path and Path(path).is_file():
            tokens += read_token_file(Path(path))
        return cls(tokens)

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def check(self, token: str | None) -> AuthResult:
        if not token:
            return AuthResult.MISSING
        digest = hashlib.sha256(token.encode()).digest()
        ok = False
        for known in self._digests:
            ok |= hmac.compare_digest(digest, known)
        return AuthResult.OK if ok else AuthResult.MISMATCH

    def check_metadata(self, metadata: Iterable[tuple[str, str | bytes]]) -> AuthResult:
        return self.check(bearer_token(metadata))

    def token_id(self, token: str) -> str:
        """A short stable id for a token (for cache isolation and logs), never the token."""
        return hashlib.sha256(b"clawgate-token:" + token.encode()).hexdigest()[:16]


def auth_error(result: AuthResult) -> ApiError:
    message = MISSING_MESSAGE if result is AuthResult.MISSING else MISMATCH_MESSAGE
    code = "missing_token" if result is AuthResult.MISSING else "invalid_api_key"
    return ApiError(401, message, type="authentication_error", code=code)
