"""docker-compose.yml + deploy/compose.ci.yml brought up for real with podman-compose and the
project's offline images, exercised through Envoy's published port as users do.

Runs only from `make compose-test` (CLAWGATE_COMPOSE_TEST=1, images built, podman set up);
a plain `pytest` skips it. The stack starts once for the module and is torn down, with a
check that nothing of it is left, whatever happens in the tests.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from openai import OpenAI

from clawgate.common.services import SERVICES
from clawgate.deploy.compose import CI_FILE, COMPOSE_FILE, ollama_models
from tests.deploy.compose_harness import ComposeProject, HealthTicker, podman, publish_port

pytestmark = pytest.mark.skipif(
    os.environ.get("CLAWGATE_COMPOSE_TEST") != "1",
    reason="the compose smoke suite runs from `make compose-test`",
)

MODEL = ollama_models()[0]
SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD", re.IGNORECASE)


@dataclass(frozen=True)
class Deployed:
    project: ComposeProject
    base_url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def openai(self) -> OpenAI:
        return OpenAI(base_url=self.base_url + "/api/v1", api_key=self.token, max_retries=0)

    def chat(self, content: str) -> requests.Response:
        body = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
        return requests.post(
            self.base_url + "/api/v1/chat/completions", json=body, headers=self.headers, timeout=60
        )


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    port = publish_port()
    token = secrets.token_urlsafe(24)
    project = ComposeProject(
        name=os.environ.get("CLAWGATE_COMPOSE_PROJECT", f"cgsmoke{os.getpid()}"),
        files=[COMPOSE_FILE, CI_FILE],
        env={
            "CLAWGATE_TOKEN": token,
            "CLAWGATE_PUBLISH": f"127.0.0.1:{port}",
            "CLAWGATE_IMAGE": os.environ["CLAWGATE_IMAGE"],
            "REDIS_IMAGE": os.environ["REDIS_IMAGE"],
        },
    )
    try:
        with HealthTicker(project):
            project.up()
            project.wait_healthy()
            yield Deployed(project, f"http://127.0.0.1:{port}", token)
    finally:
        project.down()
        left = project.leftovers()
        assert not any(left.values()), f"compose down left these behind: {left}"


def test_every_part_runs_and_passes_its_healthcheck(deployed: Deployed) -> None:
    rows = deployed.project.containers()
    services = {str(r["Labels"]["com.docker.compose.service"]) for r in rows}  # type: ignore[index]
    # ollama-pull is in the `pull` profile in CI: the stand-in has its models already.
    assert services == {"envoy", "redis", "ollama", *(s.name for s in SERVICES)}
    assert set(deployed.project.health().values()) == {"healthy"}


def test_health_through_the_published_port(deployed: Deployed) -> None:
    # Health checks in the background: its first round may predate the others' start.
    deadline = time.monotonic() + 30
    while (
        public := requests.get(deployed.base_url + "/api/v1/health", timeout=10)
    ).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert public.status_code == 200, public.text
    assert public.json()["status"] == "ok"
    full = requests.get(deployed.base_url + "/api/v1/health", headers=deployed.headers, timeout=10)
    names = {c["name"] for c in full.json()["components"]}
    assert {s.name for s in SERVICES if s.probed_by_health} <= names
    assert full.json()["status"] == "ok", full.text


def test_models_lists_the_configured_model(deployed: Deployed) -> None:
    models = [m.id for m in deployed.openai().models.list()]
    assert models == [MODEL]


def test_requests_without_the_token_are_refused(deployed: Deployed) -> None:
    reply = requests.get(deployed.base_url + "/api/v1/models", timeout=10)
    assert reply.status_code == 401
    assert reply.json()["error"]["type"]


def test_chat_unary_and_stream(deployed: Deployed) -> None:
    client = deployed.openai()
    unary = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert unary.choices[0].message.content
    assert unary.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Count to three"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices[0].finish_reason == "stop" or any(
        c.choices and c.choices[0].finish_reason == "stop" for c in chunks
    )


def test_agent_create_and_list(deployed: Deployed) -> None:
    name = f"compose-{uuid.uuid4().hex[:8]}"
    url = deployed.base_url + "/api/v1/agents"
    created = requests.post(
        url, json={"name": name, "model": MODEL}, headers=deployed.headers, timeout=10
    )
    assert created.status_code == 200, created.text
    listed = requests.get(url, params={"page_size": 1000}, headers=deployed.headers, timeout=10)
    assert created.json() in listed.json()["agents"]


def test_second_identical_request_is_a_cache_hit(deployed: Deployed) -> None:
    prompt = f"cache me {uuid.uuid4().hex}"
    first = deployed.chat(prompt)
    assert first.status_code == 200, first.text
    assert first.headers.get("x-cache") == "MISS"
    second = deployed.chat(prompt)
    assert second.headers.get("x-cache") == "HIT"
    assert second.json()["choices"] == first.json()["choices"]


def test_redis_keeps_an_append_only_file_on_a_volume(deployed: Deployed) -> None:
    project = deployed.project
    (redis,) = project.names("redis")
    reply = project.exec(redis, "redis-cli", "config", "get", "appendonly")
    assert reply.split() == ["appendonly", "yes"]
    (mount,) = project.inspect(redis)["Mounts"]
    assert (mount["Type"], mount["Destination"]) == ("volume", "/data")
    # An agent written through the API lands in the AOF on the volume (fsync every second)
    # and is still there after Redis restarts from it.
    name = f"aof-{uuid.uuid4().hex[:8]}"
    url = deployed.base_url + "/api/v1/agents"
    created = requests.post(
        url, json={"name": name, "model": MODEL}, headers=deployed.headers, timeout=10
    )
    assert created.status_code == 200, created.text
    aof = Path(json.loads(podman("volume", "inspect", mount["Name"]))[0]["Mountpoint"])
    wait_for(lambda: any(name.encode() in f.read_bytes() for f in aof.glob("**/*.aof")), 10)
    podman("restart", "-t", "5", redis)

    def listed() -> bool:
        page = requests.get(url, params={"page_size": 1000}, headers=deployed.headers, timeout=10)
        return page.status_code == 200 and created.json() in page.json()["agents"]

    wait_for(listed, 60)


def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout_s}s: {condition}"
        time.sleep(0.5)


def test_images_hold_no_secrets(deployed: Deployed) -> None:
    for image in (os.environ["CLAWGATE_IMAGE"], os.environ["REDIS_IMAGE"]):
        inspected = json.loads(podman("image", "inspect", image))[0]
        names = [e.split("=", 1)[0] for e in inspected["Config"].get("Env") or []]
        assert not [n for n in names if SECRET_NAME.search(n)], (image, names)
    # The token reaches the services at run time, from the environment.
    (chat,) = deployed.project.names("chat")
    assert f"CLAWGATE_TOKEN={deployed.token}" in deployed.project.inspect(chat)["Config"]["Env"]


def test_scaled_chat_replicas_all_answer_behind_envoy(deployed: Deployed) -> None:
    project = deployed.project
    project.up(chat=2)
    replicas = project.names("chat")
    assert len(replicas) == 2
    project.wait_healthy()
    # Envoy's STRICT_DNS cluster picks up the new replica on its next DNS refresh.
    (envoy,) = project.names("envoy")
    deadline = time.monotonic() + 60
    while envoy_healthy_hosts(project, envoy, "chat") < 2:
        assert time.monotonic() < deadline, "Envoy never saw two healthy chat replicas"
        time.sleep(1)
    served: set[str] = set()
    for i in range(20):  # round robin: each replica gets one of any two requests
        reply = deployed.chat(f"replica check {i} {uuid.uuid4().hex}")
        assert reply.status_code == 200, reply.text
        served = {r for r in replicas if "CreateChatCompletion" in project.log(r)}
        if served == set(replicas):
            break
    assert served == set(replicas)


def envoy_healthy_hosts(project: ComposeProject, envoy: str, cluster: str) -> int:
    script = (
        "import urllib.request as u;"
        "print(u.urlopen('http://127.0.0.1:9901/clusters').read().decode())"
    )
    lines = project.exec(envoy, "python", "-c", script).splitlines()
    return sum(
        1 for line in lines
        if line.startswith(f"{cluster}::") and line.endswith("::health_flags::healthy")
    )  # fmt: skip
