"""Named, scoped tokens: the token-file line format, config `auth.tokens`, reloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawgate.common.auth import Authenticator, AuthResult, append_token_line
from clawgate.common.config import ConfigError, parse_auth
from clawgate.common.tokens import (
    ADMIN,
    AGENTS_READ,
    CHAT,
    Principal,
    TokenFormatError,
    parse_token_line,
)


def test_a_plain_line_is_an_admin_token_named_admin() -> None:
    spec = parse_token_line("cg-abc", "line 1")
    assert (spec.name, spec.token, spec.scopes) == ("admin", "cg-abc", frozenset({ADMIN}))


def test_structured_lines_carry_name_and_scopes() -> None:
    spec = parse_token_line("ci-bot:chat,agents:read:cg-x:y", "line 1")
    assert spec.name == "ci-bot" and spec.token == "cg-x:y"
    assert spec.scopes == frozenset({CHAT, AGENTS_READ})
    assert "cg-x" not in repr(spec)


@pytest.mark.parametrize(
    ("line", "message"),
    [("bot:superuser:cg-x", "unknown scope superuser"), ("b@d:chat:cg-x", "token name"),
     ("bot:chat: ", "empty")],
)  # fmt: skip
def test_bad_lines_say_what_is_wrong_without_the_token(line: str, message: str) -> None:
    with pytest.raises(TokenFormatError, match=message) as failed:
        parse_token_line(line, "tokens line 3")
    assert "line 3" in str(failed.value) and "cg-x" not in str(failed.value)


def test_config_tokens_and_their_errors() -> None:
    auth = parse_auth({"tokens": [{"name": "bob", "token": "t-bob", "scopes": ["chat"]}],
                       "rateLimits": {"bob": {"requestsPerMinute": 5}}})  # fmt: skip
    assert auth.tokens[0].scopes == frozenset({CHAT})
    assert auth.limits_for("bob").requests_per_minute == 5
    assert auth.limits_for("someone").requests_per_minute == 0  # no limit unless configured
    with pytest.raises(ConfigError, match=r"auth.tokens\[0\]: unknown scope root"):
        parse_auth({"tokens": [{"name": "x", "token": "t", "scopes": ["root"]}]})
    with pytest.raises(ConfigError, match="requestsPerMinute must be 0 or more"):
        parse_auth({"rateLimits": {"default": {"requestsPerMinute": -1}}})


def test_principals_and_isolation(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("cg-admin\n")
    auth = Authenticator([], token_file=path, reload_every_s=0)
    admin = auth.authenticate("cg-admin")
    assert isinstance(admin, Principal) and admin.is_admin and admin.tenant is None
    append_token_line(path, "reader:chat:cg-reader")
    reader = auth.authenticate("cg-reader")
    assert isinstance(reader, Principal) and reader.name == "reader"
    assert reader.allows(CHAT) and not reader.allows(AGENTS_READ)
    # Two tokens now: each caller gets its own cache namespace.
    assert reader.tenant == reader.token_id and reader.tenant != auth.token_id("cg-admin")
    # A broken edit keeps the tokens that worked.
    path.write_text("cg-admin\nbad:nonsense:cg-x\nreader:chat:cg-reader\n")
    assert auth.check("cg-admin") is AuthResult.OK
    assert auth.check("cg-x") is AuthResult.MISMATCH
