"""Fixtures for the client tests: the npm projects in clients/ (installed with `npm ci`
from their lock files when node_modules is missing) and the CLI run as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from clawgate.launcher.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
POSTMAN = ROOT / "clients" / "postman"
NODE = ROOT / "clients" / "node"


def npm_project(folder: Path) -> Path:
    """`folder` with its node_modules installed from the lock file (`npm ci` when missing or
    older than the lock); skips only outside CI when Node is absent."""
    if not (shutil.which("node") and shutil.which("npm")):
        if os.environ.get("CI"):
            pytest.fail("node and npm are required in CI (apt-get install nodejs npm)")
        pytest.skip("node/npm not installed: the Node and Postman client tests need them")
    # npm keeps a copy of the lock it installed from: reinstall when ours changed since.
    installed = folder / "node_modules" / ".package-lock.json"
    lock = folder / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True
        )
        assert result.returncode == 0, f"npm ci in {folder} failed:\n{result.stderr}"
    return folder


@pytest.fixture(scope="session")
def postman_tools() -> Path:
    return npm_project(POSTMAN)


@pytest.fixture(scope="session")
def node_client() -> Path:
    return npm_project(NODE)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    """Runs `clawgate …` in a fresh process with the stack's state folder (where the token
    and the URL file are) as `onboard` leaves it; no URL or token on the command line."""

    stack: Stack
    cwd: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWGATE_")}
        return {**env, "CLAWGATE_STATE_DIR": str(self.stack.plan.state_dir), "NO_COLOR": "1"}

    def __call__(self, *args: str, timeout: float = 60) -> CliResult:
        result = subprocess.run(
            [sys.executable, "-m", "clawgate.cli", *args],
            env=self.env(), cwd=self.cwd, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        return CliResult(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def cli(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(stack, tmp_path_factory.mktemp("cli"))
