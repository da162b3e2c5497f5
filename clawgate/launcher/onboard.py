"""`clawgate onboard`: start the whole gateway locally with one command (R5)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from clawgate.client.api import no_proxy_opener
from clawgate.client.connection import NoToken, saved_token, token_path
from clawgate.common.auth import ensure_token_file
from clawgate.common.config import (
    API_OLLAMA,
    Config,
    ConfigError,
    ProviderSpec,
    chat_processes,
    load_config,
)
from clawgate.common.services import SERVICES, ServiceAddrs
from clawgate.common.supervision import status_path
from clawgate.common.tokens import TokenFormatError
from clawgate.launcher.processes import StartError, free_port, free_ports, port_open
from clawgate.launcher.stack import Stack, StackPlan, StandinPlan, write_json
from clawgate.launcher.supervisor import PolicyError, RestartPolicy, Supervisor


def say(message: str = "") -> None:
    print(message, flush=True)


def _redis_host_port(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


def worker_notes(config: Config) -> list[str]:
    """What is wrong with each configured worker, probed through its provider's adapter
    (the same probe health and /models use, so onboard tells the same story)."""
    from services.chat.providers import adapter_for
    from services.chat.providers.base import UpstreamFailure, UpstreamUnreachable, public_url

    async def probe_all() -> list[str]:
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:

            async def one(provider: ProviderSpec, url: str) -> str | None:
                shown = public_url(url)
                try:
                    found = await adapter_for(provider.api).probe(session, provider, url)
                except UpstreamUnreachable:
                    start = "`ollama serve`" if "11434" in url else "the model server"
                    return (
                        f"no model server answers at {shown}. Start {start}, or run "
                        "`clawgate onboard --demo` to try every endpoint with the built-in "
                        "stand-in."
                    )
                except UpstreamFailure as failure:
                    return f"worker {shown}: {failure.message}"
                missing = found.missing([m.id for m in provider.models])
                if not missing:
                    return None
                pull = "; ".join(f"`ollama pull {m}`" for m in missing)
                advice = f" (run {pull})" if found.server == "ollama" else ""
                return f"{found.server} at {shown} does not have {', '.join(missing)}{advice}"

            notes = await asyncio.gather(*(one(p, u) for p, u in config.worker_urls()))
        return [n for n in notes if n]

    return asyncio.run(probe_all())


def _demo_providers(config: Config, standin_url: str) -> dict[str, Any]:
    """The configured providers, every worker replaced by the stand-in."""
    providers: dict[str, Any] = {}
    for p in config.providers:
        providers[p.id] = {
            "baseUrl": standin_url if p.api == API_OLLAMA else standin_url + "/v1",
            "apiKey": "demo",
            "api": p.api,
            "models": [
                {
                    "id": m.id, "name": m.name, "reasoning": m.reasoning, "input": list(m.input),
                    "contextWindow": m.context_window, "maxTokens": m.max_tokens,
                    "cost": {"input": m.cost.input, "output": m.cost.output,
                             "cacheRead": m.cost.cache_read, "cacheWrite": m.cost.cache_write},
                }
                for m in p.models
            ],
        }  # fmt: skip
    return providers


def chat_addrs(config: Config, processes: int) -> ServiceAddrs:
    """The services' addresses with `processes` chat processes: the first on the configured
    chat address, the others on free ports of the same host."""
    first = config.services.chat
    host = first.rpartition(":")[0].strip("[]") or "127.0.0.1"
    more = [f"{first.rpartition(':')[0]}:{p}" for p in free_ports(processes - 1, host)]
    return ServiceAddrs(dict(config.services), {"chat": [first, *more]})


def shared_limit_notes(config: Config, processes: int) -> list[str]:
    """Per-worker slot limits smaller than the number of chat processes: each process keeps
    one slot, so the gateway may run more than the limit at once."""
    notes = []
    for p in config.providers:
        limit = p.max_concurrency or config.chat.worker_concurrency
        if limit < processes:
            notes.append(
                f"provider {p.id} allows {limit} requests at once per worker but "
                f"{processes} chat processes each keep one slot, so up to {processes} may "
                "run at once; raise its maxConcurrency or run fewer chat processes"
            )
    return notes


def plan_stack(
    config: Config, *, demo: bool, processes: int | None = None
) -> tuple[StackPlan, list[str]]:
    """Decide ports, Redis and workers; returns the plan and notes for the user.
    `processes`: chat processes to run (default: the config's `chat.processes`)."""
    notes: list[str] = []
    state = Path(config.state_dir).resolve()
    token_file = token_path(config)
    ensure_token_file(token_file)

    if port_open(config.gateway.host if config.gateway.host != "0.0.0.0" else "127.0.0.1",
                 config.gateway.port):  # fmt: skip
        raise StartError(
            f"port {config.gateway.port} is already in use: is Clawgate already running? "
            "Stop it, or set CLAWGATE_PORT to another port."
        )
    for service in SERVICES:
        host, _, busy = config.services[service.name].rpartition(":")
        if port_open(host or "127.0.0.1", int(busy)):
            raise StartError(
                f"the {service.name} service port {busy} is in use; set {service.addr_env}"
            )
    processes = processes or config.chat.processes
    addrs = chat_addrs(config, processes)
    if processes > 1:
        notes.append(f"{processes} chat processes: {', '.join(addrs.processes('chat').values())}")
        notes += shared_limit_notes(config, processes)

    redis_host, redis_port = _redis_host_port(config.redis_url)
    own_redis: int | None = None
    redis_url = config.redis_url
    if not port_open(redis_host, redis_port):
        own_redis = redis_port if redis_host in ("127.0.0.1", "localhost") else free_port()
        redis_url = f"redis://127.0.0.1:{own_redis}/0"
        notes.append(
            f"Redis not reachable at {config.redis_url}: starting one "
            f"({redis_url}, append-only file on)"
        )

    standins: dict[str, StandinPlan] = {}
    config_path = Path(config.source).resolve() if config.source != "defaults" else None
    if demo:
        port = 11434 if not port_open("127.0.0.1", 11434) else free_port()
        models = tuple(dict.fromkeys(m.id for _, m in config.models()))
        standins["demo"] = StandinPlan(port=port, models=models, token_delay_ms=30)
        url = f"http://127.0.0.1:{port}"
        config_path = write_json(
            state / "demo-config.json", {"providers": _demo_providers(config, url)}
        )
        notes.append(f"demo mode: the built-in ollama stand-in answers at {url} (no real model)")
    else:
        notes += worker_notes(config)

    plan = StackPlan(
        state_dir=state,
        config_path=config_path,
        token_file=token_file,
        host=config.gateway.host,
        port=config.gateway.port,
        admin_port=config.gateway.admin_port,
        addrs=addrs,
        redis_port=own_redis,
        redis_url=redis_url,
        standins=standins,
        edge_limits=config.gateway.limits,
    )
    return plan, notes


def console_url(stack: Stack) -> str:
    """The web console's URL with the token; the page stores it and cleans the address bar."""
    return f"{stack.rest_url}/?token={urllib.parse.quote(stack.token, safe='')}"


def health_summary(stack: Stack) -> str:
    request = urllib.request.Request(
        stack.rest_url + "/api/v1/health", headers={"Authorization": f"Bearer {stack.token}"}
    )
    try:
        with no_proxy_opener().open(request, timeout=10) as reply:
            report = json.load(reply)
    except urllib.error.HTTPError as err:
        report = json.load(err)
    except (urllib.error.URLError, OSError, ValueError) as err:
        return f"  health: no answer ({err})"
    lines = [f"  overall: {report.get('status')}"]
    for c in report.get("components", []):
        lines.append(f"  {c['status']:>8}  {c['name']}: {c.get('detail', '')}")
    return "\n".join(lines)


def supervise(stack: Stack, stop: threading.Event, policy: RestartPolicy) -> int:
    """Restart children that die (see supervisor.py) until asked to stop."""
    supervisor = Supervisor(stack, policy, say, status_path(stack.plan.state_dir))
    supervisor.publish()
    while not stop.wait(0.5):
        supervisor.tick()
    return 0


def onboard(demo: bool = False, config_path: str | None = None, workers: str | None = None) -> int:
    """`workers`: chat processes (an integer or "auto"); default the config's
    `chat.processes`."""
    config = load_config(config_path)
    try:
        policy = RestartPolicy.from_env()
        processes = None if workers is None else chat_processes(workers, "--workers")
        plan, notes = plan_stack(config, demo=demo, processes=processes)
    except (StartError, PolicyError, TokenFormatError, ConfigError) as err:
        say(f"cannot start: {err}")
        return 1
    for note in notes:
        say(f"note: {note}")
    stack = Stack(plan)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        say("starting Clawgate…")
        started = time.monotonic()
        stack.start()
        say(f"Clawgate is up in {time.monotonic() - started:.1f}s")
        say(f"  console  : {console_url(stack)}  (opens the web console, remembers the token)")
        say(f"  base URL : {stack.rest_url}/api/v1  (OpenAI clients: base_url=<this>)")
        say(f"  gRPC     : {stack.grpc_target}")
        say(f"  token    : {stack.token}   (again: `clawgate token`)")
        say(f"  logs     : {plan.logs}")
        say('  CLI      : clawgate chat "Hello" · clawgate models · clawgate agents list')
        say(f"  OpenAPI  : {stack.rest_url}/api/v1/openapi.json")
        say(health_summary(stack))
        say(
            f"\ntry: curl -H 'Authorization: Bearer {stack.token}' {stack.rest_url}/api/v1/models\n"
            "Ctrl-C stops everything."
        )
        code = supervise(stack, stop, policy)
    except StartError as err:
        say(f"cannot start: {err}")
        code = 1
    finally:
        say("stopping…")
        for name, exit_code in stack.stop().items():
            say(f"  {name}: exit {exit_code}")
    return code


def print_token(config_path: str | None = None) -> int:
    try:
        print(saved_token(load_config(config_path)))
    except NoToken as err:
        print(err, file=sys.stderr)
        return 1
    return 0
