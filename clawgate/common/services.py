"""The one list of Clawgate's service processes.

Everything that needs to know which services exist reads `SERVICES`: the config
(`CLAWGATE_<NAME>_ADDR` to dial it, `CLAWGATE_<NAME>_LISTEN`, `services:` in the file),
the launcher (children, readiness, order), Envoy's config (clusters, routes, transcoded
services), the health report, the proto check, compose and Kubernetes (clawgate/deploy).
Adding a service is one entry here plus its folder under `services/` and its protos under
`proto/clawgate/<name>/v1/`.
A plain HTTP service
(the web console) has no protos: it lists the public paths Envoy routes to it and answers
`GET /healthz`; Envoy, the launcher and the health report probe it over HTTP.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass


class Protocol(enum.Enum):
    """How Envoy and the health checks speak to a service."""

    # gRPC (h2c): REST is transcoded from its protos; health is grpc.health.v1.
    GRPC = "grpc"
    # Plain HTTP/1.1 (e.g. the web console): Envoy routes `http_routes` to it unchanged;
    # health is `GET /healthz` answering 200.
    HTTP = "http"


@dataclass(frozen=True)
class ServiceDef:
    name: str  # process and Envoy cluster name; also the compose/k8s service name
    grpc_services: tuple[str, ...]  # full names of the gRPC services it serves publicly
    default_port: int
    # Whether the gateway is down without it (health's overall status); others degrade it.
    critical: bool = False
    # Whether the health service probes it (health does not probe itself).
    probed_by_health: bool = True
    # Methods callable without a token (`/pkg.Service/Method`); also marked in the OpenAPI.
    public_methods: tuple[str, ...] = ()
    # Whether its server reflection describes every public service: Envoy routes
    # grpc.reflection (behind the token) to this one service, so that grpcurl through the
    # public port sees the whole API.
    reflects_all: bool = False
    protocol: Protocol = Protocol.GRPC
    # HTTP services: the public paths Envoy routes to it; `/x/*` stands for the prefix `/x/`.
    http_routes: tuple[str, ...] = ()
    health_path: str = "/healthz"  # HTTP services only
    # Whether the local launcher may run several processes of it (chat: `chat.processes`),
    # each on its own port; compose and Kubernetes scale it by replicas instead.
    scalable: bool = False

    @property
    def module(self) -> str:
        """The Python module run as the process (`python -m services.<name>`)."""
        return f"services.{self.name}"

    @property
    def addr_env(self) -> str:
        """The environment variable holding its address (`CLAWGATE_CHAT_ADDR`)."""
        return f"CLAWGATE_{self.name.upper()}_ADDR"

    @property
    def listen_env(self) -> str:
        """The variable holding the address it listens on (`CLAWGATE_CHAT_LISTEN`). Unset,
        it listens on its dial address (one machine); containers listen on every interface
        and are dialled by name."""
        return f"CLAWGATE_{self.name.upper()}_LISTEN"

    @property
    def addrs_env(self) -> str:
        """Scalable services: the variable listing every process's address, comma-separated
        (`CLAWGATE_CHAT_ADDRS`), for those that must reach each one (health, metrics)."""
        return f"CLAWGATE_{self.name.upper()}_ADDRS"

    @property
    def default_addr(self) -> str:
        return f"127.0.0.1:{self.default_port}"

    @property
    def container_listen(self) -> str:
        """Its listen address in a container (compose, Kubernetes)."""
        return f"[::]:{self.default_port}"

    @property
    def container_addr(self) -> str:
        """Its dial address between containers: the compose service or Kubernetes Service."""
        return f"{self.name}:{self.default_port}"

    @property
    def primary(self) -> str:
        """The gRPC service whose grpc.health.v1 status says the process can serve."""
        if self.protocol is not Protocol.GRPC:
            raise ValueError(f"{self.name} is not a gRPC service; probe {self.health_path}")
        return self.grpc_services[0]

    def health_url(self, addr: str) -> str:
        """HTTP services: the URL of the health probe at `addr` (`host:port`)."""
        return f"http://{addr}{self.health_path}"

    @property
    def generated_dirs(self) -> tuple[str, ...]:
        """Folders of its generated Python code (`clawgate/chat/v1`)."""
        return tuple(dict.fromkeys("/".join(s.split(".")[:3]) for s in self.grpc_services).keys())


# Started in this order; health last, so its first round of checks finds the others up.
SERVICES: tuple[ServiceDef, ...] = (
    # Chat also keeps conversations (sessions): the console and API clients share them.
    ServiceDef(
        "chat",
        (
            "clawgate.chat.v1.ChatService",
            "clawgate.sessions.v1.SessionService",
            # Batches run through chat's pipeline at low priority (services/batches).
            "clawgate.batches.v1.BatchService",
        ),
        50051,
        critical=True,
        scalable=True,
    ),
    ServiceDef("agents", ("clawgate.agents.v1.AgentService",), 50052),
    # The web console's pages and static assets; it calls the REST API like any client.
    ServiceDef(
        "web",
        (),
        50054,
        protocol=Protocol.HTTP,
        http_routes=("/", "/chat", "/agents", "/status", "/console/*"),
    ),
    ServiceDef(
        "health",
        ("clawgate.health.v1.HealthService",),
        50053,
        probed_by_health=False,
        # Anyone may ask whether the gateway is up (details need a token) and probe it.
        public_methods=tuple(
            f"/clawgate.health.v1.HealthService/{m}"
            for m in ("GetHealth", "CheckLiveness", "CheckReadiness")
        ),
        reflects_all=True,
    ),
)

BY_NAME: Mapping[str, ServiceDef] = {s.name: s for s in SERVICES}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def reflection_hub() -> ServiceDef:
    """The service whose reflection describes the whole public API."""
    return next(s for s in SERVICES if s.reflects_all)


def process_names(service: str, count: int) -> list[str]:
    """Names of a service's processes: `chat`, then `chat:2` … `chat:<count>` (child names
    in the launcher, components in the health report, the metrics' process label)."""
    return [service] + [f"{service}:{i}" for i in range(2, count + 1)]


def service_of(process: str) -> str:
    """The service a process name belongs to (`chat:2` → `chat`)."""
    return process.partition(":")[0]


def grpc_service_names() -> list[str]:
    """Every public gRPC service (what Envoy transcodes and routes)."""
    return [svc for s in SERVICES for svc in s.grpc_services]


_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}:\d+")


class ServiceAddrs(Mapping[str, str]):
    """`host:port` of every service, by name; defaults for those not given.

    A scalable service run as several processes (`processes`) has one address per process;
    its mapping value is the first one (where a single connection is enough to dial it).
    """

    def __init__(
        self,
        addrs: Mapping[str, str] | None = None,
        processes: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        given = dict(addrs or {})
        several = {name: tuple(a) for name, a in (processes or {}).items() if len(a) > 1}
        unknown = (set(given) | set(several)) - set(BY_NAME)
        if unknown:
            raise KeyError(f"unknown services: {', '.join(sorted(unknown))}")
        not_scalable = [name for name in several if not BY_NAME[name].scalable]
        if not_scalable:
            raise ValueError(f"only one process of {', '.join(not_scalable)} can run")
        for name, addrs_of in several.items():
            given[name] = addrs_of[0]
        self._addrs = {s.name: given.get(s.name, s.default_addr) for s in SERVICES}
        self._processes = several

    def processes(self, name: str) -> dict[str, str]:
        """Every process of the service: process name (`chat`, `chat:2`) → address."""
        addrs = self._processes.get(name, (self._addrs[name],))
        return dict(zip(process_names(name, len(addrs)), addrs, strict=True))

    def dial_target(self, name: str) -> str:
        """A gRPC target reaching any of the service's processes: with several on IPv4
        literals, `ipv4:a:1,b:2` (gRPC moves to the next one when one is down)."""
        addrs = self._processes.get(name)
        if addrs and all(_IPV4.fullmatch(a) for a in addrs):
            return "ipv4:" + ",".join(addrs)
        return self._addrs[name]

    def __getitem__(self, name: str) -> str:
        return self._addrs[name]

    def __getattr__(self, name: str) -> str:
        # `addrs.chat` reads better than `addrs["chat"]` where one service dials another.
        try:
            return self.__dict__["_addrs"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._addrs)

    def __len__(self) -> int:
        return len(self._addrs)

    def __repr__(self) -> str:
        return f"ServiceAddrs({self._addrs!r}, processes={self._processes!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ServiceAddrs) and self._processes != other._processes:
            return False
        return isinstance(other, Mapping) and dict(self) == dict(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._addrs.items())))

    def env(self) -> dict[str, str]:
        """As environment variables for child processes."""
        env = {BY_NAME[name].addr_env: addr for name, addr in self._addrs.items()}
        for name, addrs in self._processes.items():
            env[BY_NAME[name].addrs_env] = ",".join(addrs)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str], defaults: Mapping[str, str]) -> ServiceAddrs:
        """From `CLAWGATE_<NAME>_ADDR` (else `defaults`) and `CLAWGATE_<NAME>_ADDRS`."""
        addrs = {s.name: str(env.get(s.addr_env, defaults.get(s.name, s.default_addr)))
                 for s in SERVICES}  # fmt: skip
        processes = {
            s.name: [a.strip() for a in env[s.addrs_env].split(",") if a.strip()]
            for s in SERVICES
            if s.scalable and env.get(s.addrs_env)
        }
        return cls(addrs, processes)
