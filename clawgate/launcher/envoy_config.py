"""Envoy's configuration, rendered from the gateway config.

One listener serves REST (transcoded from the protos' google.api.http annotations) and
native gRPC (h2c) on the same port; each service is a cluster with active gRPC health
checks. Envoy's own replies (no route, malformed JSON, no healthy upstream) are reshaped
into OpenAI errors by `local_reply_config`; service errors by the Lua filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clawgate.common.config import EdgeLimits

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "envoy"
DESCRIPTOR = DEPLOY_DIR / "clawgate.pb"
LUA_FILTER = DEPLOY_DIR / "openai_errors.lua"

# (cluster, gRPC service) for every public service; routes match the gRPC path, which is
# also what transcoded REST requests are rewritten to.
_T = "type.googleapis.com/"

DEFAULT_LIMITS = EdgeLimits()

SERVICES: tuple[tuple[str, str], ...] = (
    ("chat", "clawgate.chat.v1.ChatService"),
    ("agents", "clawgate.agents.v1.AgentService"),
    ("health", "clawgate.health.v1.HealthService"),
)


@dataclass(frozen=True)
class EnvoyPorts:
    listen_host: str
    port: int
    admin_port: int
    chat: str  # "host:port"
    agents: str
    health: str


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _cluster(name: str, service: str, addr: str) -> dict[str, Any]:
    host, port = _split(addr)
    return {
        "name": name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "common_http_protocol_options": {"max_response_headers_kb": 1024},
                "explicit_http_config": {"http2_protocol_options": {
                    # A malformed or oversized reply resets only its own stream, never the
                    # shared connection with every other client's live streams on it.
                    "override_stream_error_on_invalid_http_message": True,
                    "max_header_field_size_kb": 256,
                }},
            }
        },
        "circuit_breakers": {
            "thresholds": [{"max_connections": 10000, "max_pending_requests": 10000,
                            "max_requests": 10000, "max_retries": 50}]
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "2s",
                # Default is 60 s: a dead service would look healthy for a minute.
                "no_traffic_interval": "2s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {"service_name": service},
            }
        ],
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": host,
                                                                  "port_value": port}}}}
                ]}
            ],
        },
    }  # fmt: skip


_REQ_WITHOUT_QUERY = {
    "name": "envoy.formatter.req_without_query",
    "typed_config": {
        "@type": _T + "envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery"
    },
}


def _rest_mapper(
    filter_: dict[str, Any], status: str, message: str, type_: str, code: str
) -> dict[str, Any]:
    """A local-reply mapper for REST callers. `x-http-status` carries the status for the Lua
    filter, which needs it when Envoy answered in gRPC's form (the request claimed to be
    gRPC over HTTP/1, where gRPC cannot run)."""
    return {
        "filter": filter_,
        "headers_to_add": [{"header": {"key": "x-http-status", "value": status},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
        "body_format_override": _error_body(message, type_, code),
    }  # fmt: skip


def _error_body(message: str, type_: str, code: str) -> dict[str, Any]:
    return {
        "json_format": {"error": {"message": message, "type": type_, "param": None, "code": code}},
        "content_type": "application/json",
        # Paths are printed without their query string: it may carry a token.
        "formatters": [_REQ_WITHOUT_QUERY],
    }


def _not_grpc_and_status(status: int, op: str = "EQ") -> dict[str, Any]:
    """Envoy's own reply with `status` (`op`: EQ, GE, LE) to a REST caller (native gRPC
    keeps gRPC replies).

    The Lua filter marks native gRPC requests in dynamic metadata before the transcoder
    rewrites transcoded requests to look like gRPC.
    """
    return {
        "and_filter": {
            "filters": [
                {"status_code_filter": {"comparison": {"op": op, "value": {
                    "default_value": status,
                    "runtime_key": f"clawgate.reply_{op.lower()}_{status}"}}}},
                {"metadata_filter": {
                    "matcher": {"filter": "clawgate", "path": [{"key": "native_grpc"}],
                                "value": {"bool_match": False}},
                    "match_if_key_not_found": True,
                }},
            ]
        }
    }  # fmt: skip


def _seconds(value: float) -> str:
    """A protobuf Duration in YAML (never exponent notation, which Envoy rejects)."""
    return f"{value:.3f}".rstrip("0").rstrip(".") + "s"


def _local_reply_config(limits: EdgeLimits) -> dict[str, Any]:
    mappers = [
        (400, "invalid request: %LOCAL_REPLY_BODY%", "invalid_request_error", "invalid_json"),
        (
            404,
            "no such endpoint: %REQ(:METHOD)% %REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%;"
            " the API lives under /api/v1 (chat/completions, models, agents, health)",
            "not_found_error",
            "unknown_endpoint",
        ),
        (
            413,
            "request body too large: %LOCAL_REPLY_BODY%",
            "invalid_request_error",
            "request_too_large",
        ),
        (
            503,
            "gateway service unavailable (%LOCAL_REPLY_BODY%); a Clawgate service is not"
            " running or not healthy, see GET /api/v1/health",
            "api_error",
            "service_unavailable",
        ),
        (
            408,
            "the request was not received in time (%LOCAL_REPLY_BODY%); send it faster",
            "invalid_request_error",
            "request_timeout",
        ),
        (
            431,
            f"request headers too large or too many: the gateway accepts at most"
            f" {limits.max_request_headers_kb} KB of headers and {limits.max_headers_count}"
            " headers; send large values in the body",
            "invalid_request_error",
            "request_headers_too_large",
        ),
        (504, "gateway timeout: %LOCAL_REPLY_BODY%", "api_error", "gateway_timeout"),
    ]
    exact = [
        _rest_mapper(_not_grpc_and_status(status), str(status), message, type_, code)
        for status, message, type_, code in mappers
    ]
    # What a client sent is never a server error: the codec's 501 (e.g. an unsupported
    # Transfer-Encoding) is a 400.
    unsupported = {
        **_rest_mapper(
            _not_grpc_and_status(501),
            "400",
            "the request uses an HTTP feature the gateway does not support"
            " (%LOCAL_REPLY_BODY%), e.g. a Transfer-Encoding other than chunked",
            "invalid_request_error",
            "unsupported_http_feature",
        ),
        "status_code": 400,
    }
    # Any other reply of Envoy's own still gets OpenAI's shape.
    others = [
        _rest_mapper(_not_grpc_and_status(500, "GE"), "%RESPONSE_CODE%",
                     "gateway error: %LOCAL_REPLY_BODY%", "api_error", "gateway_error"),
        _rest_mapper(_not_grpc_and_status(400, "GE"), "%RESPONSE_CODE%",
                     "invalid request: %LOCAL_REPLY_BODY%", "invalid_request_error",
                     "invalid_request"),
    ]  # fmt: skip
    return {"mappers": [*exact, unsupported, *others]}


def render(
    ports: EnvoyPorts,
    limits: EdgeLimits = DEFAULT_LIMITS,
    descriptor: Path = DESCRIPTOR,
    lua: Path = LUA_FILTER,
) -> dict[str, Any]:
    """The whole Envoy bootstrap as a dict (dump it as YAML or JSON)."""
    routes = [
        {
            "match": {"prefix": f"/{service}/"},
            # Streaming chat must not be cut by a route timeout; the services enforce
            # their own deadlines (request timeout, time to first token).
            "route": {
                "cluster": cluster,
                "timeout": "0s",
                "retry_policy": {
                    # Only failures where the request never reached a service: safe to repeat.
                    "retry_on": "connect-failure,refused-stream,reset-before-request",
                    "num_retries": 2,
                },
            },
        }
        for cluster, service in SERVICES
    ]
    hcm = {
        "@type": _T
        + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "clawgate",
        "codec_type": "AUTO",
        "server_name": "clawgate",
        # Edge limits (README "Limits"): slow or idle clients are closed, big headers get
        # 431, so no client can hold connections or memory indefinitely.
        "request_headers_timeout": _seconds(limits.request_headers_timeout_s),
        "request_timeout": _seconds(limits.request_receive_timeout_s),
        "stream_idle_timeout": _seconds(limits.stream_idle_timeout_s),
        "max_request_headers_kb": limits.max_request_headers_kb,
        "common_http_protocol_options": {
            "idle_timeout": _seconds(limits.idle_timeout_s),
            "max_headers_count": limits.max_headers_count,
        },
        "http2_protocol_options": {"max_concurrent_streams": limits.max_concurrent_streams},
        "route_config": {
            "name": "clawgate",
            "virtual_hosts": [{"name": "clawgate", "domains": ["*"], "routes": routes}],
        },
        "local_reply_config": _local_reply_config(limits),
        "http_filters": [
            {
                "name": "envoy.filters.http.lua",
                "typed_config": {
                    "@type": _T + "envoy.extensions.filters.http.lua.v3.Lua",
                    "default_source_code": {"filename": str(lua)},
                },
            },
            {
                "name": "envoy.filters.http.grpc_json_transcoder",
                "typed_config": {
                    "@type": _T
                    + "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
                    "proto_descriptor": str(descriptor),
                    "services": [service for _, service in SERVICES],
                    "print_options": {
                        "preserve_proto_field_names": True,
                        "always_print_primitive_fields": True,
                    },
                    # `?token=…` or other extra query parameters must not break routing.
                    "ignore_unknown_query_parameters": True,
                    "convert_grpc_status": False,
                },
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": _T + "envoy.extensions.filters.http.router.v3.Router"},
            },
        ],
    }
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": ports.admin_port}},
            # The launcher's readiness checks must work even when clients use every slot.
            "ignore_global_conn_limit": True,
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": _T + "envoy.extensions.resource_monitors."
                        "downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": limits.max_connections,
                    },
                }
            ]
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "clawgate",
                    "address": {
                        "socket_address": {"address": ports.listen_host, "port_value": ports.port}
                    },
                    # Room for long conversations: the transcoder buffers the request body.
                    "per_connection_buffer_limit_bytes": 16 * 1024 * 1024,
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                      "typed_config": hcm}]}
                    ],
                }
            ],
            "clusters": [
                _cluster(cluster, service, getattr(ports, cluster))
                for cluster, service in SERVICES
            ],
        },
    }  # fmt: skip


def write(path: Path, ports: EnvoyPorts, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(render(ports, **kwargs), sort_keys=False), encoding="utf-8")
    return path
