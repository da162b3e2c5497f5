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
from collections.abc import Iterator, Mapping
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


def grpc_service_names() -> list[str]:
    """Every public gRPC service (what Envoy transcodes and routes)."""
    return [svc for s in SERVICES for svc in s.grpc_services]


class ServiceAddrs(Mapping[str, str]):
    """`host:port` of every service, by name; defaults for those not given."""

    def __init__(self, addrs: Mapping[str, str] | None = None) -> None:
        given = dict(addrs or {})
        unknown = set(given) - set(BY_NAME)
        if unknown:
            raise KeyError(f"unknown services: {', '.join(sorted(unknown))}")
        self._addrs = {s.name: given.get(s.name, s.default_addr) for s in SERVICES}

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
        return f"ServiceAddrs({self._addrs!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self) == dict(other)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._addrs.items())))

    def env(self) -> dict[str, str]:
        """As environment variables for child processes."""
        return {BY_NAME[name].addr_env: addr for name, addr in self._addrs.items()}
