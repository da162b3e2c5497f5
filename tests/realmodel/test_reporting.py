"""What the gateway says about each kind of worker (health, /models, chat errors), checked
against what the servers themselves say: real llama.cpp servers (plain and keyed), a
llama-server misconfigured as `api: ollama`, and the ollama stand-in."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import openai
import pytest
import requests

from services.chat.providers.probe import SERVER_LLAMA_CPP, SERVER_OLLAMA
from tests.realmodel import llama
from tests.realmodel.conftest import (
    KEYED_ALIAS,
    NO_CACHE,
    OLLAMA_MODEL,
    WRONG_API_MODEL,
    WRONG_KEY_MODEL,
    RealModel,
    wait_for,
)
from tests.replay import recorded

llama.require()


def health(real: RealModel) -> dict[str, Any]:
    reply = requests.get(real.stack.rest_url + "/api/v1/health", headers=real.auth(), timeout=10)
    assert reply.status_code == 200, reply.text  # a misconfigured worker degrades, not downs
    body: dict[str, Any] = reply.json()
    return body


def worker(report: dict[str, Any], provider: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        c for c in report["components"]
        if c["kind"] == "llm_worker" and c["worker"]["provider"] == provider
    ]  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def models(real: RealModel) -> dict[str, Any]:
    listed: dict[str, Any] = {m.id: m for m in real.client().models.list().data}
    return listed


def wrong_api_text(real: RealModel) -> str:
    return (
        f"worker at {real.plain.url} does not serve the ollama native API; "
        "use `api: openai-completions`"
    )


def test_health_describes_llama_cpp_as_it_is(real: RealModel) -> None:
    component = worker(health(real), "llama")
    info = component["worker"]
    assert component["status"] == "ok", component
    assert info["server"] == SERVER_LLAMA_CPP
    assert info["version"] == real.plain.get("/props")["build_info"]
    served = [m["id"] for m in real.plain.get("/v1/models")["data"]]
    assert info["pulled_models"] == served == [real.model]
    assert [m["name"] for m in info["loaded_models"]] == [real.model]
    assert info["missing_models"] == []
    assert "ollama" not in json.dumps(component).lower()
    assert component["detail"].startswith(SERVER_LLAMA_CPP)


def test_health_probes_a_keyed_worker_with_its_key(real: RealModel) -> None:
    # The key is required for /v1/models (llama-server answers 401 without it).
    assert requests.get(real.keyed.url + "/v1/models", timeout=5).status_code == 401
    component = worker(health(real), "llama-keyed")
    assert component["status"] == "ok", component
    assert component["worker"]["pulled_models"] == [KEYED_ALIAS]
    assert [m["name"] for m in component["worker"]["loaded_models"]] == [KEYED_ALIAS]
    assert real.keyed.api_key and real.keyed.api_key not in json.dumps(health(real))


def test_a_wrong_key_is_named_in_health_and_chat(real: RealModel) -> None:
    component = worker(health(real), "llama-wrong-key")
    assert component["status"] == "down"
    assert "refused the provider's API key (HTTP 401)" in component["detail"]
    assert "ollama" not in component["detail"]
    assert models(real)[WRONG_KEY_MODEL].available is False  # type: ignore[attr-defined]
    with pytest.raises(openai.APIStatusError) as caught:
        real.client().chat.completions.create(
            model=WRONG_KEY_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2,
            extra_headers=NO_CACHE,
        )  # fmt: skip
    assert caught.value.status_code == 502
    assert (
        isinstance(caught.value.body, dict) and caught.value.body["code"] == "upstream_auth_failed"
    )


def test_a_worker_misconfigured_as_ollama_is_named_the_same_everywhere(real: RealModel) -> None:
    component = worker(health(real), "llama-as-ollama")
    assert component["status"] == "down"
    assert component["detail"] == wrong_api_text(real)
    assert models(real)[WRONG_API_MODEL].available is False  # type: ignore[attr-defined]
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as caught:
            reply = real.client().chat.completions.create(
                model=WRONG_API_MODEL, messages=[{"role": "user", "content": "hi"}],
                max_tokens=2, stream=stream, extra_headers=NO_CACHE,
            )  # fmt: skip
            if stream:
                list(reply)  # type: ignore[arg-type]
        body = caught.value.body
        assert caught.value.status_code == 502
        assert isinstance(body, dict) and body["code"] == "worker_misconfigured"
        assert body["message"] == wrong_api_text(real)


def test_the_ollama_standin_is_still_reported_as_ollama(real: RealModel) -> None:
    real.client().chat.completions.create(
        model=OLLAMA_MODEL, messages=[{"role": "user", "content": "load it"}], max_tokens=2,
        extra_headers=NO_CACHE,
    )  # fmt: skip
    component = wait_for(  # the health report is cached for a second
        lambda: (c := worker(health(real), "ollama"))["worker"]["loaded_models"] and c,
        "the loaded model in the health report",
    )
    info = component["worker"]
    assert component["status"] == "ok" and info["server"] == SERVER_OLLAMA
    standin = real.stack.standins["ollama"]
    assert info["version"] == requests.get(standin + "/api/version", timeout=5).json()["version"]
    ps = requests.get(standin + "/api/ps", timeout=5).json()["models"]
    assert [m["name"] for m in info["loaded_models"]] == [m["model"] for m in ps] == [OLLAMA_MODEL]
    assert info["vram_used_bytes"] == ps[0]["size_vram"] > 0
    assert "GiB VRAM" in component["detail"]


def test_models_list_says_which_models_are_served(real: RealModel) -> None:
    listed = models(real)
    assert listed[real.model].available is True  # type: ignore[attr-defined]
    assert listed[KEYED_ALIAS].available is True  # type: ignore[attr-defined]
    assert listed[OLLAMA_MODEL].available is True  # type: ignore[attr-defined]


@pytest.mark.parametrize("which", ["path", "alias"])
def test_models_with_slashes_are_retrieved_through_envoy(real: RealModel, which: str) -> None:
    model_id = real.model if which == "path" else KEYED_ALIAS
    fetched = real.client().models.retrieve(model_id)  # the SDK sends the id %2F-encoded
    assert fetched.id == model_id and fetched.model_extra
    assert fetched.model_extra["available"] is True
    encoded = requests.get(
        f"{real.stack.rest_url}/api/v1/models/{quote(model_id, safe='')}", headers=real.auth(),
        timeout=10,
    )  # fmt: skip
    assert encoded.status_code == 200 and encoded.json()["id"] == model_id


@pytest.mark.parametrize("which", ["path", "alias"])
def test_model_ids_with_raw_slashes_and_colons(real: RealModel, which: str) -> None:
    model_id = real.model if which == "path" else KEYED_ALIAS
    raw = requests.get(
        f"{real.stack.rest_url}/api/v1/models/{model_id}", headers=real.auth(), timeout=10
    )
    assert raw.status_code == 200, raw.text
    assert raw.json()["id"] == model_id


def test_the_server_still_answers_in_the_recorded_shapes(real: RealModel) -> None:
    # tests/data/llama_cpp/ feeds the parser tests; a llama.cpp upgrade that changes the
    # shapes shows here (re-record with `python -m tests.tools.record_llama`).
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    direct = requests.post(real.plain.url + "/v1/chat/completions", json=body, timeout=30)
    assert set(direct.json()) == set(recorded("llama_cpp/chat.response.json"))
    assert set(real.plain.get("/v1/models")["data"][0]) == set(
        recorded("llama_cpp/models.response.json")["data"][0]
    )
    overflow = requests.post(
        real.plain.url + "/v1/chat/completions",
        json={**body, "messages": [{"role": "user", "content": "word " * 1500}]},
        timeout=30,
    )
    assert overflow.status_code == 400
    assert set(overflow.json()["error"]) == set(
        recorded("llama_cpp/overflow.response.json")["error"]
    )
