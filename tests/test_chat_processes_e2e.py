"""`clawgate onboard --demo --workers 2`: two chat processes behind Envoy. Requests reach
both, health and `/metrics` see both, the two together never send a worker more requests
at once than its limit, and one killed is health-checked out by Envoy (the gateway keeps
answering) and restarted by the launcher."""

from __future__ import annotations

import os
import re
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.test_onboard_e2e import _env
from tests.test_onboard_restarts_e2e import Onboarded, run_onboard, wait_for

MODEL = "qwen3:32b"  # the default config's model, served by the demo stand-in
WORKER_LIMIT = 4  # chat.workerConcurrency's default: split 2 + 2 between the processes


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Onboarded]:
    tmp = tmp_path_factory.mktemp("two-chat")
    # A killed process stays down for 2 s before its restart: time to see the gateway
    # answer without it.
    env = _env(tmp, CLAWGATE_RESTART_BACKOFF_S="2")
    with run_onboard(env, tmp, "--workers", "2") as run:
        yield run


def standin_url(run: Onboarded) -> str:
    found = re.search(r"stand-in answers at (http://\S+)", run.output)
    assert found, run.output
    return found.group(1)


def ask(run: Onboarded, text: str, timeout: float = 30) -> requests.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 8}
    return requests.post(
        run.base + "/api/v1/chat/completions", headers=run.headers, json=body, timeout=timeout
    )


def answered_by_process(run: Onboarded) -> dict[str, float]:
    """Chat completions counted by each chat process (the gateway's merged /metrics)."""
    reply = requests.get(run.base + "/metrics", headers=run.headers, timeout=10)
    assert reply.status_code == 200, reply.text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(reply.text):
        for s in family.samples:
            if s.name == "clawgate_chat_requests_total" and s.labels.get("code") == "200":
                process = s.labels["clawgate_process"]
                counts[process] = counts.get(process, 0.0) + s.value
    return counts


def health(run: Onboarded) -> dict[str, Any]:
    reply = requests.get(run.base + "/api/v1/health", headers=run.headers, timeout=10)
    report: dict[str, Any] = reply.json()
    return report


def test_requests_through_envoy_reach_both_processes_and_metrics_see_both(
    two: Onboarded,
) -> None:
    assert "2 chat processes" in two.output
    before = answered_by_process(two)
    for i in range(24):  # one at a time: LEAST_REQUEST picks among equals at random
        reply = ask(two, f"spread {i} {uuid.uuid4()}")
        assert reply.status_code == 200, reply.text
    after = answered_by_process(two)
    assert set(after) == {"chat", "chat:2"}
    added = {p: after[p] - before.get(p, 0.0) for p in after}
    assert sum(added.values()) == 24 and all(n > 0 for n in added.values()), added
    scrape = requests.get(two.base + "/metrics", headers=two.headers, timeout=10).text
    for process in ("chat", "chat:2"):
        assert (
            f'clawgate_scrape_up{{clawgate_process="{process}",clawgate_service="chat"}} 1.0'
            in scrape
        )


def test_health_reports_every_chat_process(two: Onboarded) -> None:
    def both_ok() -> dict[str, Any] | None:
        report = health(two)
        services = {c["name"]: c for c in report["components"] if c["kind"] == "service"}
        ok = all(services.get(p, {}).get("status") == "ok" for p in ("chat", "chat:2"))
        return services if ok else None

    services = wait_for("both chat processes ok", both_ok)
    assert services["chat:2"]["critical"] and services["chat:2"]["uptime_seconds"] > 0


def test_the_processes_together_never_exceed_a_workers_limit(two: Onboarded) -> None:
    standin = standin_url(two)
    # Generations in parallel at the stand-in, so only the gateway's limit holds them back.
    patched = requests.patch(standin + "/_standin/settings", json={"num_parallel": 64}, timeout=10)
    assert patched.ok, patched.text
    requests.delete(standin + "/_standin/requests", timeout=10)
    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(lambda i: ask(two, f"limit {i} {uuid.uuid4()}"), range(24)))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies if not r.ok]
    log = requests.get(standin + "/_standin/requests", timeout=10).json()["requests"]
    chats = [r for r in log if r["path"].endswith("/chat/completions")]
    assert len(chats) == 24
    # The most requests the worker ever had at once (its log: arrival to end of answer).
    events = sorted(
        [(r["started_at"], 1) for r in chats] + [(r["finished_at"], -1) for r in chats],
        key=lambda e: (e[0], e[1]),
    )
    at_once = peak = 0
    for _, step in events:
        at_once += step
        peak = max(peak, at_once)
    assert 1 <= peak <= WORKER_LIMIT, peak


def test_a_killed_process_is_taken_out_by_envoy_and_restarted(two: Onboarded) -> None:
    pid = wait_for("chat:2 running", lambda: two.child("chat:2").get("pid"))
    os.kill(int(pid), signal.SIGKILL)
    # Once it is dead (the launcher saw it exit; a request in flight on it dies with it),
    # the gateway keeps answering: Envoy retries a refused connection on the other process
    # and its health checks take chat:2 out.
    wait_for("the launcher to see chat:2 exit", lambda: two.child("chat:2")["state"] != "running")
    for i in range(10):
        reply = ask(two, f"while one is down {i} {uuid.uuid4()}")
        assert reply.status_code == 200, reply.text
    wait_for(
        "the launcher to restart chat:2",
        lambda: (c := two.child("chat:2")).get("state") == "running" and c.get("pid") != pid,
    )
    assert "chat:2 exited with code -9" in two.output and ".. chat:2 is back" in two.output
    before = answered_by_process(two).get("chat:2", 0.0)

    def chat2_serves_again() -> bool:
        assert ask(two, f"back {uuid.uuid4()}").status_code == 200
        return answered_by_process(two).get("chat:2", 0.0) > before

    wait_for("requests to reach the restarted chat:2", chat2_serves_again)
