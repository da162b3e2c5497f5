"""The soak harness (bench/soak.py) for 20 seconds: a smoke test of the harness itself,
and of the gateway under mixed traffic with a flaky worker."""

from __future__ import annotations

import json
from pathlib import Path

from bench import soak


def test_a_short_soak_reports_traffic_memory_and_fds(tmp_path: Path) -> None:
    args = soak.parse_args(["--seconds", "20", "--sample-seconds", "4", "--out", str(tmp_path)])
    result, report = soak.run(args)
    assert report.is_file() and report.with_suffix(".json").is_file()
    assert json.loads(report.with_suffix(".json").read_text())["requests"] == result["requests"]
    kinds = {outcome.split()[0] for outcome in result["outcomes"]}
    assert kinds == set(soak.KINDS)
    assert result["faults_injected"]
    assert result["unexpected"] == 0, result["unexpected_examples"]
    assert len(result["samples"]) >= 4
    assert {"chat", "envoy", "steady", "flaky", "redis"} <= set(result["processes"])
    assert all(p["rss_last_kb"] > 0 and p["fds_last"] > 0 for p in result["processes"].values())
    assert "| chat |" in report.read_text()
