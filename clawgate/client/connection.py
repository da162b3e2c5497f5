"""Where the gateway is and which token to send: what `clawgate onboard` saved.

URL: `--url`, else `$CLAWGATE_URL`, else `<state_dir>/url` (written when the stack is up),
else `http://127.0.0.1:<configured port>`. Token: `--token`, else `$CLAWGATE_TOKEN` (the
first one), else the file `$CLAWGATE_TOKEN_FILE` or `<state_dir>/token`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from clawgate.common.auth import read_token_file
from clawgate.common.config import Config

URL_FILE = "url"


class NoToken(Exception):
    """No gateway token anywhere: the gateway was never onboarded here."""


def url_file(state_dir: str | Path) -> Path:
    return Path(state_dir) / URL_FILE


def write_url(state_dir: str | Path, url: str) -> Path:
    path = url_file(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(url + "\n", encoding="utf-8")
    return path


def token_path(config: Config) -> Path:
    """$CLAWGATE_TOKEN_FILE, else `<state_dir>/token` (what onboard creates)."""
    default = Path(config.state_dir).resolve() / "token"
    return Path(os.environ.get("CLAWGATE_TOKEN_FILE", default))


def saved_token(config: Config) -> str:
    if os.environ.get("CLAWGATE_TOKEN"):
        return os.environ["CLAWGATE_TOKEN"].split(",")[0].strip()
    path = token_path(config)
    tokens = read_token_file(path) if path.is_file() else []
    if not tokens:
        raise NoToken("no gateway token yet: run `clawgate onboard` (or `make up`) first")
    return tokens[0]


def saved_url(config: Config) -> str:
    if os.environ.get("CLAWGATE_URL"):
        return os.environ["CLAWGATE_URL"].rstrip("/")
    path = url_file(config.state_dir)
    if path.is_file() and path.read_text(encoding="utf-8").strip():
        return path.read_text(encoding="utf-8").strip().rstrip("/")
    host = config.gateway.host if config.gateway.host not in ("0.0.0.0", "") else "127.0.0.1"
    return f"http://{host}:{config.gateway.port}"


@dataclass(frozen=True)
class Connection:
    url: str  # the gateway's root, e.g. http://127.0.0.1:8000
    token: str

    @classmethod
    def resolve(
        cls, config: Config, url: str | None = None, token: str | None = None
    ) -> Connection:
        return cls((url or saved_url(config)).rstrip("/"), token or saved_token(config))
