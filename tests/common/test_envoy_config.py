from __future__ import annotations

import subprocess
from pathlib import Path

from clawgate.common.services import SERVICES
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
    web = {str(r["match"]): r["route"]["cluster"] for r in routes if r["route"]["cluster"] == "web"}
    assert set(web) == {str({"path": p}) for p in ("/", "/chat", "/agents", "/status")} | {
        str({"prefix": "/console/"})
    }  # "/" is exact: /api/v1/<unknown> stays Envoy's 404
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "web")
    assert cluster["health_checks"][0]["http_health_check"] == {"path": "/healthz"}
    options = cluster["typed_extension_protocol_options"]
    assert "http_protocol_options" in next(iter(options.values()))["explicit_http_config"]
