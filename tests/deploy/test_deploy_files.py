"""The committed compose files and Kubernetes manifests are what the renderers make from the
service registry, cover every registered service, and validate against Kubernetes' schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate

from clawgate.common import services as registry
from clawgate.common.services import SERVICES, Protocol, ServiceDef
from clawgate.deploy import compose, k8s

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes these manifests promise to work on


def cli(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "clawgate.cli", *args],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (("compose-config",), "docker-compose.yml"),
        (("compose-config", "--ci"), "deploy/compose.ci.yml"),
        (("k8s-manifests",), "deploy/k8s/base/clawgate.yaml"),
    ],
)
def test_committed_file_is_what_the_renderer_makes(args: tuple[str, ...], path: str) -> None:
    assert cli(*args) == (ROOT / path).read_text(), (
        f"{path} is stale: run `clawgate {' '.join(args)} > {path}`"
    )


def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_every_registered_service_runs_in_compose_with_listen_and_dial_addresses() -> None:
    services = load_compose()["services"]
    for s in SERVICES:
        svc = services[s.name]
        assert svc["command"] == ["python", "-m", s.module]
        assert svc["healthcheck"]["test"][-1] == s.name
        assert svc["environment"][s.listen_env] == f"[::]:{s.default_port}"
        for other in SERVICES:  # every container can dial every service by its name
            assert svc["environment"][other.addr_env] == f"{other.name}:{other.default_port}"
        assert services["envoy"]["depends_on"][s.name] == {"condition": "service_healthy"}


def test_every_long_running_container_has_a_healthcheck_and_no_baked_secret() -> None:
    services = load_compose()["services"]
    for name, svc in services.items():
        if svc.get("restart") == "no":
            continue  # the one-shot model pull
        assert svc["healthcheck"]["test"][0] == "CMD", name
        for key, value in (svc.get("environment") or {}).items():
            if "TOKEN" in key or "KEY" in key:
                assert str(value).startswith("${"), f"{name}.{key} must come from the environment"


def test_production_compose_has_redis_aof_volume_gpu_and_model_pull() -> None:
    services = load_compose()["services"]
    redis = services["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["volumes"] == ["redis-data:/data"]
    (gpu,) = services["ollama"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    pull = services["ollama-pull"]
    assert pull["depends_on"] == {"ollama": {"condition": "service_healthy"}}
    assert pull["command"] == [" && ".join(f"ollama pull {m}" for m in compose.ollama_models())]
    assert compose.ollama_models() == ["qwen3:32b"]  # deploy/clawgate.yaml's model


def test_a_new_registry_entry_appears_in_compose_and_kubernetes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    web = ServiceDef("web", ("clawgate.web.v1.WebService",), 50099)
    monkeypatch.setattr(registry, "SERVICES", (*SERVICES, web))
    monkeypatch.setattr(compose, "SERVICES", registry.SERVICES)
    monkeypatch.setattr(k8s, "SERVICES", registry.SERVICES)
    services = yaml.safe_load(compose.render())["services"]
    assert services["web"]["command"] == ["python", "-m", "services.web"]
    assert services["chat"]["environment"]["CLAWGATE_WEB_ADDR"] == "web:50099"
    kinds = {(d["kind"], d["metadata"]["name"]) for d in k8s.manifests()}
    assert {("Deployment", "web"), ("Service", "web"), ("PodDisruptionBudget", "web")} <= kinds


def k8s_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / "base" / "clawgate.yaml").read_text()) if d]


def test_kubernetes_manifests_validate_against_the_schema() -> None:
    docs = k8s_docs()
    # Overlay patches that are whole objects validate too.
    for patch in sorted(K8S.glob("overlays/*/*.yaml")):
        if patch.name != "kustomization.yaml":
            docs.append(yaml.safe_load(patch.read_text()))
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {e.message}")


def test_kubernetes_runs_every_service_with_probes_and_headless_services() -> None:
    by_kind: dict[tuple[str, str], dict[str, Any]] = {
        (d["kind"], d["metadata"]["name"]): d for d in k8s_docs()
    }
    for s in SERVICES:
        pod = by_kind[("Deployment", s.name)]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        if s.protocol is Protocol.GRPC:
            kind, probe = "grpc", {"port": s.default_port, "service": s.primary}
        else:  # the console: its own HTTP health path
            kind, probe = "httpGet", {"path": s.health_path, "port": s.default_port}
        assert container["readinessProbe"][kind] == probe
        assert container["livenessProbe"][kind] == probe
        assert container["resources"]["requests"]
        # Headless: Envoy's STRICT_DNS sees every pod rather than one virtual IP.
        assert by_kind[("Service", s.name)]["spec"]["clusterIP"] == "None"
        assert ("PodDisruptionBudget", s.name) in by_kind
    assert by_kind[("HorizontalPodAutoscaler", "chat")]["spec"]["scaleTargetRef"]["name"] == "chat"
    env = by_kind[("ConfigMap", "clawgate-env")]["data"]
    assert env["CLAWGATE_OLLAMA_URL"].count("ollama-") == k8s.OLLAMA_WORKERS
    ollama = by_kind[("StatefulSet", "ollama")]["spec"]
    assert ollama["replicas"] == k8s.OLLAMA_WORKERS
    assert ollama["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    redis = by_kind[("StatefulSet", "redis")]["spec"]
    assert "--appendonly" in redis["template"]["spec"]["containers"][0]["args"]
    assert redis["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_kustomizations_reference_files_and_objects_that_exist() -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in k8s_docs()}
    for kfile in sorted(K8S.glob("**/kustomization.yaml")):
        kust = yaml.safe_load(kfile.read_text())
        for resource in kust.get("resources", []):
            assert (kfile.parent / resource).exists(), (kfile, resource)
        for patch in kust.get("patches", []):
            doc = yaml.safe_load(
                (kfile.parent / patch["path"]).read_text() if "path" in patch else patch["patch"]
            )
            assert (doc["kind"], doc["metadata"]["name"]) in names, (kfile, doc)
        for replicas in kust.get("replicas", []):
            assert any(n == replicas["name"] for _, n in names), (kfile, replicas)


def test_production_overlay_lists_one_url_per_gpu_worker() -> None:
    overlay = K8S / "overlays" / "production"
    (replicas,) = yaml.safe_load((overlay / "kustomization.yaml").read_text())["replicas"]
    urls = yaml.safe_load((overlay / "workers.yaml").read_text())["data"]["CLAWGATE_OLLAMA_URL"]
    expected = [f"http://ollama-{i}.ollama:11434/v1" for i in range(replicas["count"])]
    assert urls.split(",") == expected
