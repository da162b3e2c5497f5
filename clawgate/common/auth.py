"""Gateway tokens: where they come from and how a call proves it has one.

Tokens come from $CLAWGATE_TOKEN (comma-separated), from the file named by
$CLAWGATE_TOKEN_FILE (one per line; the launcher writes `<state_dir>/token`) and from
config `auth.tokens`. Each has a name and scopes (clawgate.common.tokens); a plain line is
an admin token. The file is re-read when it changes, so a token added with
`clawgate token --create` works without a restart. Tokens are compared in constant time
and never logged.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from clawgate.common.errors import ApiError
from clawgate.common.tokens import (
    Principal,
    TokenFormatError,
    TokenSpec,
    parse_token_line,
    token_id,
)

log = logging.getLogger("clawgate.auth")

MISSING_MESSAGE = "unauthorized: gateway token missing"
MISMATCH_MESSAGE = "unauthorized: gateway token mismatch"
NO_TOKENS_MESSAGE = "unauthorized: the gateway has no token configured"
# How often a call may look at the token file's modification time.
RELOAD_CHECK_S = 1.0


class AuthResult(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    MISMATCH = "mismatch"


def generate_token() -> str:
    return "cg-" + secrets.token_urlsafe(32)


def _token_lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]


def read_token_file(path: Path) -> list[str]:
    """The tokens of a token file (without names and scopes)."""
    return [s.token for s in read_token_specs(path)]


def read_token_specs(path: Path) -> list[TokenSpec]:
    return [
        parse_token_line(line, f"{path} line {i}")
        for i, line in enumerate(_token_lines(path), start=1)
    ]


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def ensure_token_file(path: Path) -> str:
    """Return the first token in `path`, creating the file with a new token if needed."""
    if path.is_file():
        tokens = read_token_file(path)
        if tokens:
            return tokens[0]
    token = generate_token()
    _write_private(path, token + "\n")
    return token


def append_token_line(path: Path, line: str) -> None:
    """Add one line to a token file, keeping it private (0600)."""
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    _write_private(path, existing + line + "\n")


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
    """Checks bearer tokens against the configured set and names the caller."""

    def __init__(
        self,
        tokens: Iterable[str | TokenSpec],
        *,
        token_file: Path | None = None,
        reload_every_s: float = RELOAD_CHECK_S,
    ) -> None:
        self._fixed = [t if isinstance(t, TokenSpec) else TokenSpec("admin", t) for t in tokens]
        self._file = token_file
        self._file_stamp: tuple[int, int] | None = None
        self._reload_every_s = reload_every_s
        self._checked_at = 0.0
        self._index: list[tuple[bytes, Principal]] = []
        self._load(self._read_file())

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, extra: Iterable[TokenSpec] = ()
    ) -> Authenticator:
        """Tokens of $CLAWGATE_TOKEN, $CLAWGATE_TOKEN_FILE and `extra` (config)."""
        env = os.environ if env is None else env
        tokens: list[str | TokenSpec] = [
            t.strip() for t in env.get("CLAWGATE_TOKEN", "").split(",") if t.strip()
        ]
        tokens += list(extra)
        path = env.get("CLAWGATE_TOKEN_FILE")
        return cls(tokens, token_file=Path(path) if path else None)

    def _read_file(self) -> list[TokenSpec]:
        if self._file is None:
            return []
        try:
            stat = self._file.stat()
        except OSError:
            self._file_stamp = None
            return []
        self._file_stamp = (stat.st_mtime_ns, stat.st_size)
        return read_token_specs(self._file)

    def _load(self, from_file: list[TokenSpec]) -> None:
        specs = [s for s in [*self._fixed, *from_file] if s.token]
        multi = len({s.token for s in specs}) > 1
        # Keep digests, not tokens: equal-length compare, nothing printable in memory dumps.
        self._index = [
            (
                hashlib.sha256(s.token.encode()).digest(),
                Principal(s.name, token_id(s.token), s.scopes, multi_tenant=multi),
            )
            for s in specs
        ]

    def _maybe_reload(self) -> None:
        if self._file is None:
            return
        now = time.monotonic()
        if now - self._checked_at < self._reload_every_s:
            return
        self._checked_at = now
        try:
            stat = self._file.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp == self._file_stamp:
            return
        try:
            self._load(self._read_file())
            log.info("token file reloaded", extra={"tokens": len(self._index)})
        except (TokenFormatError, OSError) as exc:
            # Keep the tokens we had: a half-edited file must not lock everyone out.
            log.error("token file not reloaded", extra={"error": str(exc)})

    @property
    def configured(self) -> bool:
        return bool(self._index)

    def authenticate(self, token: str | None) -> Principal | AuthResult:
        """The caller's principal, or why there is none."""
        if not token:
            return AuthResult.MISSING
        self._maybe_reload()
        digest = hashlib.sha256(token.encode()).digest()
        found: Principal | None = None
        for known, principal in self._index:  # no early exit: constant time
            if hmac.compare_digest(digest, known) and found is None:
                found = principal
        return found if found is not None else AuthResult.MISMATCH

    def check(self, token: str | None) -> AuthResult:
        result = self.authenticate(token)
        return result if isinstance(result, AuthResult) else AuthResult.OK

    def check_metadata(self, metadata: Iterable[tuple[str, str | bytes]]) -> AuthResult:
        return self.check(bearer_token(metadata))

    def token_id(self, token: str) -> str:
        """A short stable id for a token (for cache isolation and logs), never the token."""
        return token_id(token)


def auth_error(result: AuthResult) -> ApiError:
    message = MISSING_MESSAGE if result is AuthResult.MISSING else MISMATCH_MESSAGE
    code = "missing_token" if result is AuthResult.MISSING else "invalid_api_key"
    return ApiError(401, message, type="authentication_error", code=code)


def permission_error(method: str, scope: str, principal: Principal) -> ApiError:
    """403 for an authenticated caller whose token lacks the method's scope."""
    name = method.rsplit("/", 1)[-1]
    return ApiError(
        403,
        f"permission denied: token '{principal.name}' lacks the '{scope}' scope needed "
        f"for {name}; ask an admin for a token with that scope",
        type="permission_error",
        code="permission_denied",
    )
