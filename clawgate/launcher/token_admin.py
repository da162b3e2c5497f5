"""`clawgate token --create/--list/--revoke`: named, scoped tokens in the token file.

The services re-read the token file within a second of a change, so new and revoked
tokens take effect without a restart. The file stays private (0600); listing shows names
and scopes, never tokens.
"""

from __future__ import annotations

import sys
from pathlib import Path

from clawgate.common.auth import append_token_line, generate_token, read_token_specs
from clawgate.common.tokens import (
    TokenFormatError,
    TokenSpec,
    check_name,
    format_token_line,
    parse_scopes,
)


def create(path: Path, name: str, scopes: str) -> int:
    try:
        scope_set = parse_scopes(scopes.split(","), "--scopes")
        spec = TokenSpec(check_name(name, "--create"), generate_token(), scope_set)
        existing = read_token_specs(path) if path.is_file() else []
    except TokenFormatError as err:
        print(f"cannot create the token: {err}", file=sys.stderr)
        return 2
    if any(s.name == name for s in existing):
        print(f"a token named {name!r} exists; revoke it first or pick another name",
              file=sys.stderr)  # fmt: skip
        return 1
    append_token_line(path, format_token_line(spec))
    print(spec.token)
    return 0


def list_tokens(path: Path) -> int:
    if not path.is_file():
        print(f"no token file at {path}: run `clawgate onboard` first", file=sys.stderr)
        return 1
    for spec in read_token_specs(path):
        print(f"{spec.name}\t{','.join(sorted(spec.scopes))}")
    return 0


def revoke(path: Path, name: str) -> int:
    if not path.is_file():
        print(f"no token file at {path}", file=sys.stderr)
        return 1
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not _names(line, name)]
    if len(kept) == len(lines):
        print(f"no token named {name!r} in {path}", file=sys.stderr)
        return 1
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    print(f"revoked {len(lines) - len(kept)} token(s) named {name!r}")
    return 0


def _names(line: str, name: str) -> bool:
    text = line.strip()
    return (
        bool(text)
        and not text.startswith("#")
        and text.count(":") >= 2
        and (text.split(":", 1)[0] == name)
    )
