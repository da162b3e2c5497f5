"""The console's files, read once at startup and served from memory.

Assets are served under `/console/<version>/`, where the version is a digest of every
file: their URLs change whenever any file changes, so browsers may cache them for a year
(`immutable`), while the page itself is revalidated on every visit (`no-cache` + ETag).
ES modules import each other by relative URL, so they stay inside one version.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
SHELL = "index.html"  # every page shares it; the page module is chosen by the path
ASSETS_PLACEHOLDER = "{{assets}}"
PREFIX = "/console/"

_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".html": "text/html",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _asset(body: bytes, name: str) -> Asset:
    suffix = Path(name).suffix
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@dataclass(frozen=True)
class Bundle:
    version: str
    shell: Asset
    files: dict[str, Asset]

    @property
    def base(self) -> str:
        return f"{PREFIX}{self.version}/"


def load(directory: Path = STATIC_DIR) -> Bundle:
    raw = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
    digest = hashlib.sha256()
    for name, body in raw.items():
        digest.update(name.encode() + b"\0" + body + b"\0")
    version = digest.hexdigest()[:12]
    shell_text = raw.pop(SHELL).decode().replace(ASSETS_PLACEHOLDER, f"{PREFIX}{version}")
    return Bundle(
        version=version,
        shell=_asset(shell_text.encode(), SHELL),
        files={name: _asset(body, name) for name, body in raw.items()},
    )
