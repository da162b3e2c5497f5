from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_parses_and_runs_every_part() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"envoy", "chat", "agents", "health", "redis", "ollama"} <= set(compose["services"])
    assert compose["services"]["envoy"]["ports"] == ["8000:8000"]
    assert "--appendonly" in compose["services"]["redis"]["command"]


def test_compose_envoy_config_is_generated_from_the_renderer() -> None:
    fresh = subprocess.run(
        [sys.executable, "-m", "clawgate.cli", "envoy-config"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    assert fresh == (ROOT / "deploy/envoy/envoy.yaml").read_text(), (
        "deploy/envoy/envoy.yaml is stale: run `clawgate envoy-config > deploy/envoy/envoy.yaml`"
    )
