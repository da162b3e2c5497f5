"""Reading a worker probe: which configured models a worker lacks, and how it is described
(ollama advice only for ollama; what a server does not tell is said to be unknown)."""

from __future__ import annotations

from services.chat.providers.openai_probe import llama_cpp_loaded
from services.chat.providers.probe import (
    SERVER_LLAMA_CPP,
    SERVER_OLLAMA,
    SERVER_OPENAI,
    LoadedModel,
    WorkerProbe,
)


def test_ollama_names_match_with_their_default_tag() -> None:
    probe = WorkerProbe(SERVER_OLLAMA, "0.12.0", {"llama3.2:latest": 5, "qwen3:8b": 7})
    assert probe.created("llama3.2") == 5 and probe.created("QWEN3:8b") == 7
    assert probe.missing(["llama3.2", "qwen3:32b"]) == ["qwen3:32b"]


def test_a_server_that_does_not_report_loaded_models_is_not_guessed_about() -> None:
    probe = WorkerProbe(SERVER_OPENAI, "", {"meta-llama/Llama-3-8B": 0})
    assert probe.serves("meta-llama/Llama-3-8B")
    detail = probe.describe(probe.missing(["qwen3:32b"]))
    assert detail.startswith("OpenAI-compatible server reachable; loaded: unknown")
    assert "models not served: qwen3:32b (the server serves: meta-llama/Llama-3-8B)" in detail
    assert "ollama" not in detail


def test_llama_cpp_loaded_models_single_and_router_mode() -> None:
    single = [{"id": "/m.gguf", "owned_by": "llamacpp", "meta": {"size": 10, "n_ctx": 512}}]
    assert llama_cpp_loaded(single) == [LoadedModel("/m.gguf", 10.0, None, 512)]
    router = [
        {"id": "a", "owned_by": "llamacpp", "status": {"value": "loaded"}},
        {"id": "b", "owned_by": "llamacpp", "status": {"value": "unloaded"}},
    ]
    assert [m.name for m in llama_cpp_loaded(router)] == ["a"]
    probe = WorkerProbe(SERVER_LLAMA_CPP, "b6000", {"a": 0, "b": 0}, llama_cpp_loaded(router))
    assert probe.describe([]) == f"{SERVER_LLAMA_CPP} b6000 reachable; loaded: a"
    assert probe.vram_used_bytes == 0


def test_ollama_reports_gpu_memory() -> None:
    loaded = [LoadedModel("qwen3:8b", 6 * 2**30, 5 * 2**30, 4096)]
    probe = WorkerProbe(SERVER_OLLAMA, "0.12.0", {"qwen3:8b": 0}, loaded)
    assert probe.vram_used_bytes == 5 * 2**30
    assert probe.describe(["ghost:7b"]) == (
        "ollama 0.12.0 reachable; loaded: qwen3:8b (5.0 GiB VRAM); "
        "models not pulled: ollama pull ghost:7b"
    )
    assert WorkerProbe(SERVER_OLLAMA, "0.12.0", {}, []).describe([]).endswith("loaded: none")
