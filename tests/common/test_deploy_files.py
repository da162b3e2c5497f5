from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from clawgate.common.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_parses_and_runs_every_part() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    parts = {"envoy", "redis", "ollama", *(s.name for s in SERVICES)}
    assert parts <= set(compose["services"])
    assert compose["services"]["envoy"]["ports"] == ["${CLAWGATE_PUBLISH:-8000}:8000"]
    assert "--appendonly" in compose["services"]["redis"]["command"]


def test_compose_envoy_config_is_generated_from_the_renderer() -> None:
    fresh = subprocess.run(
        [sys.executable, "-m", "clawgate.cli", "envoy-config"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    assert fresh == (ROOT / "deploy/envoy/envoy.yaml").read_text(), (
        "deploy/envoy/envoy.yaml is stale: run `clawgate envoy-config > deploy/envoy/envoy.yaml`"
    )


def test_compose_envoy_config_passes_envoy_validate(tmp_path: Path) -> None:
    from clawgate.launcher.stack import envoy_binary

    text = (ROOT / "deploy/envoy/envoy.yaml").read_text()
    # In the image the descriptor and the Lua filter live in /etc/envoy.
    local = tmp_path / "envoy.yaml"
    local.write_text(text.replace("/etc/envoy/", str(ROOT / "deploy/envoy") + "/"))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(local)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
