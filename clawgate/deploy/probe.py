"""Container health probe: `python -m clawgate.deploy.probe chat|agents|health|URL`.

A service name asks the process in this container over grpc.health.v1 whether its primary
gRPC service is SERVING (on the port of `CLAWGATE_<NAME>_LISTEN`, else its default port);
an http(s) URL must answer 2xx. Exit status 0 means healthy, as compose's healthcheck and
Kubernetes' exec probes expect.
"""

from __future__ import annotations

import os
import sys
import urllib.request

from clawgate.common.services import BY_NAME, Protocol, ServiceDef

TIMEOUT_S = 3.0


def service_port(service: ServiceDef) -> int:
    listen = os.environ.get(service.listen_env, "")
    return int(listen.rpartition(":")[2]) if listen else service.default_port


def probe_service(service: ServiceDef) -> str | None:
    """None when SERVING (gRPC) or answering its health path (HTTP), else what is wrong."""
    if service.protocol is Protocol.HTTP:
        return probe_url(service.health_url(f"127.0.0.1:{service_port(service)}"))
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"127.0.0.1:{service_port(service)}"
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=service.primary), timeout=TIMEOUT_S
            )
        except grpc.RpcError as e:
            return f"{target}: {e.code().name}"  # type: ignore[attr-defined]
    if reply.status == health_pb2.HealthCheckResponse.SERVING:
        return None
    return f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"


def probe_url(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as reply:
            return None if 200 <= reply.status < 300 else f"{url}: HTTP {reply.status}"
    except OSError as e:
        return f"{url}: {e}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (args[0] in BY_NAME or args[0].startswith(("http://", "https://"))):
        print(f"usage: probe {'|'.join(BY_NAME)}|URL", file=sys.stderr)
        return 2
    target = args[0]
    problem = probe_service(BY_NAME[target]) if target in BY_NAME else probe_url(target)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
