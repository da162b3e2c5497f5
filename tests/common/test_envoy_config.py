from __future__ import annotations

import subprocess
from pathlib import Path

from clawgate.common.config import ChatSettings, EdgeLimits
from clawgate.common.services import SERVICES, Protocol, ServiceAddrs
from clawgate.launcher import envoy_config
from clawgate.launcher.stack import envoy_binary


def _ports() -> envoy_config.EnvoyPorts:
    addrs = {s.name: f"127.0.0.1:{i}" for i, s in enumerate(SERVICES, start=1)}
    return envoy_config.EnvoyPorts("127.0.0.1", 18000, 19901, addrs)


def test_rendered_config_passes_envoy_validate(tmp_path: Path) -> None:
    path = envoy_config.write(tmp_path / "envoy.yaml", _ports())
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_envoy_validate_rejects_a_missing_descriptor(tmp_path: Path) -> None:
    path = envoy_config.write(tmp_path / "envoy.yaml", _ports(), descriptor=tmp_path / "missing.pb")
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "critical" in result.stdout + result.stderr


def test_every_service_is_transcoded_and_health_checked() -> None:
    config = envoy_config.render(_ports())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = hcm["typed_config"]["http_filters"]
    transcoder = next(f for f in filters if f["name"].endswith("grpc_json_transcoder"))
    assert set(transcoder["typed_config"]["services"]) == {
        "clawgate.chat.v1.ChatService",
        "clawgate.agents.v1.AgentService",
        "clawgate.health.v1.HealthService",
        "clawgate.sessions.v1.SessionService",
        "clawgate.batches.v1.BatchService",
    }
    # The Lua error filter must see responses after the transcoder: it comes first.
    assert filters[0]["name"] == "envoy.filters.http.lua"
    for cluster in config["static_resources"]["clusters"]:
        (check,) = cluster["health_checks"]
        assert check["no_traffic_interval"] == "2s"
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_http_services_get_path_routes_and_an_http_health_check() -> None:
    config = envoy_config.render(_ports())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    web = {str(r["match"]) for r in routes if r.get("route", {}).get("cluster") == "web"}
    assert set(web) == {str({"path": p}) for p in ("/", "/chat", "/agents", "/status")} | {
        str({"prefix": "/console/"})
    }  # "/" is exact: /api/v1/<unknown> stays Envoy's 404
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "web")
    assert cluster["health_checks"][0]["http_health_check"] == {"path": "/healthz"}
    options = cluster["typed_extension_protocol_options"]
    assert "http_protocol_options" in next(iter(options.values()))["explicit_http_config"]


def test_edge_limits_are_rendered_from_the_settings() -> None:
    limits = EdgeLimits(
        request_headers_timeout_s=2.5, max_connections=77, max_request_headers_kb=20
    )
    config = envoy_config.render(_ports(), limits)
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    typed = hcm["typed_config"]
    assert typed["request_headers_timeout"] == "2.5s"
    assert typed["max_request_headers_kb"] == 20
    assert typed["common_http_protocol_options"]["idle_timeout"] == "60s"
    (monitor,) = config["overload_manager"]["resource_monitors"]
    assert monitor["typed_config"]["max_active_downstream_connections"] == 77
    assert config["admin"]["ignore_global_conn_limit"] is True
    # Streams wait silently for their first token: the idle limit must outlast it.
    assert float(typed["stream_idle_timeout"].rstrip("s")) > ChatSettings().first_token_timeout_s
    grpc_clusters = {s.name for s in SERVICES if s.protocol is Protocol.GRPC}
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] not in grpc_clusters:
            continue
        options = cluster["typed_extension_protocol_options"]
        h2 = next(iter(options.values()))["explicit_http_config"]["http2_protocol_options"]
        # A bad reply resets its own stream, not the connection other streams share.
        assert h2["override_stream_error_on_invalid_http_message"] is True


def test_several_chat_processes_are_endpoints_of_one_least_request_cluster(
    tmp_path: Path,
) -> None:
    base = {s.name: f"127.0.0.1:{i}" for i, s in enumerate(SERVICES, start=1)}
    addrs = ServiceAddrs(base, {"chat": ["127.0.0.1:1", "127.0.0.1:7002"]})
    ports = envoy_config.EnvoyPorts("127.0.0.1", 18000, 19901, addrs)
    clusters = {c["name"]: c for c in envoy_config.render(ports)["static_resources"]["clusters"]}
    chat = clusters["chat"]
    endpoints = chat["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints] == [
        1,
        7002,
    ]
    assert chat["lb_policy"] == "LEAST_REQUEST" and chat["health_checks"]
    assert "lb_policy" not in clusters["agents"]
    path = envoy_config.write(tmp_path / "envoy.yaml", ports)
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
