"""What the benchmark measures: the direct upstream, Clawgate, and each peer, as targets
with a chat URL, request headers and the processes whose CPU and memory are theirs."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import peers
from bench.stack import STANDIN, clawgate_stack
from clawgate.launcher.stack import Stack

# Whose CPU and memory count as Clawgate's: Envoy, every chat process, agents, health and
# Redis (not the web console, which serves no API request, nor the stand-in).
CLAWGATE_SERVICES = ("chat", "agents", "health")


@dataclass
class Target:
    key: str
    label: str
    chat_url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    processes: dict[str, int] = field(default_factory=dict)  # name -> pid
    cache_headers: dict[str, str] | None = None  # None: the target has no cache to measure
    grpc: dict[str, str] = field(default_factory=dict)  # "direct"/"envoy" -> host:port
    log: Path | None = None
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None  # why it could not run (its cells say so)


def patch_standin(base_url: str, settings: dict[str, Any]) -> None:
    """Change the stand-in's behaviour at run time (PATCH /_standin/settings)."""
    request = urllib.request.Request(
        base_url + "/_standin/settings",
        data=json.dumps(settings).encode(),
        method="PATCH",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        reply.read()


def direct_target(stack: Stack) -> Target:
    url = stack.standins[STANDIN]
    pid = stack.children[f"standin:{STANDIN}"].process
    assert pid is not None
    return Target(
        "direct", "direct upstream", url + "/v1/chat/completions", processes={"stand-in": pid.pid}
    )


def clawgate_target(stack: Stack, key: str = "clawgate", label: str = "Clawgate") -> Target:
    processes = {}
    names = [p for s in CLAWGATE_SERVICES for p in stack.addrs.processes(s)]
    for name in ["envoy", *names, "redis"]:
        process = stack.children[name].process
        assert process is not None
        processes[name] = process.pid
    chat = len(stack.addrs.processes("chat"))
    auth = {"Authorization": f"Bearer {stack.token}"}
    return Target(
        key,
        label,
        stack.rest_url + "/api/v1/chat/completions",
        headers=auth,
        processes=processes,
        cache_headers={},
        grpc={"direct": stack.addrs["chat"], "envoy": stack.grpc_target},
        notes=[
            f"{chat} chat process{'es' if chat > 1 else ''} (`chat.processes`); Redis "
            "counted in its CPU and memory",
            "asks the upstream for a stream even for JSON answers (the peers pass "
            "stream: false through)",
        ],
    )


def open_scaling(
    exits: contextlib.ExitStack,
    model: str,
    logs: Path,
    counts: list[int],
    main: Target,
    upstream: str,
    main_processes: int = 1,
) -> list[tuple[int, Target, str]]:
    """Clawgate with each number of chat processes in `counts`: the main stack for its own
    count (`main_processes`), a private stack (own stand-in) for each other count, stopped
    by `exits`. Returns (count, target, its stand-in's URL)."""
    found = []
    for count in counts:
        if count == main_processes:
            found.append((count, main, upstream))
            continue
        stack = exits.enter_context(
            clawgate_stack(model, 0, log_dir=logs / f"chat-x{count}", chat_processes=count)
        )
        target = clawgate_target(stack, f"clawgate-x{count}", f"Clawgate, {count} chat processes")
        found.append((count, target, stack.standins[STANDIN]))
    return found


def open_targets(
    exits: contextlib.ExitStack,
    model: str,
    logs: Path,
    peer_cache: Path,
    litellm_version: str | None,
    portkey_versions: list[str],
    chat_processes: int = 1,
) -> tuple[list[Target], str]:
    """Start Clawgate (with its stand-in) and every peer asked for, stopped by `exits`;
    return the targets and the stand-in's URL. A peer that cannot be installed or started
    becomes a target with `unavailable` set: the table says why instead of dropping it."""
    running = exits.enter_context(
        clawgate_stack(model, 0, log_dir=logs, chat_processes=chat_processes)
    )
    upstream = running.standins[STANDIN]
    targets = [direct_target(running), clawgate_target(running)]
    upstream_v1 = upstream + "/v1"
    if litellm_version:
        key, label = "litellm", f"LiteLLM {litellm_version}"
        try:
            url, child, auth = exits.enter_context(
                peers.litellm(peer_cache, litellm_version, upstream_v1, model, logs)
            )
            assert child.process is not None
            targets.append(
                Target(
                    key,
                    label,
                    url + "/v1/chat/completions",
                    headers=auth,
                    processes={"litellm": child.process.pid},
                    cache_headers={},
                    log=child.log_path,
                    notes=[
                        "one worker, in-process response cache "
                        "(cache_params type local), master key auth"
                    ],
                )
            )
        except peers.PeerUnavailable as exc:
            targets.append(Target(key, label, unavailable=str(exc)))
    node = peers.node_version()
    for version in portkey_versions:
        key, label = f"portkey-{version}", f"Portkey {version}"
        try:
            url, child = exits.enter_context(peers.portkey(peer_cache, version, logs))
            assert child.process is not None
            targets.append(
                Target(
                    key,
                    label,
                    url + "/v1/chat/completions",
                    headers=peers.portkey_headers(upstream_v1),
                    processes={"node": child.process.pid},
                    log=child.log_path,
                    notes=[
                        f"on node {node}; no cache measured: the open-source gateway "
                        "answers x-portkey-cache-status: DISABLED"
                    ],
                )
            )
        except peers.PeerUnavailable as exc:
            targets.append(Target(key, label, unavailable=str(exc)))
    return targets, upstream
