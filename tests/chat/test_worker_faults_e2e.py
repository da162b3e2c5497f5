"""Misbehaving workers and overload through the real stack (Envoy, chat, stand-ins).

Issue 13 defects 2, 4, 5, 6 and overload protection; issue 10 item 5 (slow first token).
Each provider below has its own workers' state in the chat service (ejection is per
provider and worker), so tests do not see each other's ejections.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from clawgate.launcher.stack import Stack, local_plan
from services.ollama_standin.misbehave import GARBAGE_KINDS
from tests.chat.test_chat_e2e import patch_standin, reset_standins, standin_requests

Json = dict[str, Any]
HANG_GUARD_S = 30  # only so a regression fails instead of hanging; never a timing gate
CONCURRENCY, QUEUE = 2, 2
PAIR = ("a", "b")


def _model(model_id: str, **extra: Any) -> Json:
    return {"id": model_id, "name": model_id, "contextWindow": 8192, "maxTokens": 4096, **extra}


def _provider(urls: list[str], *models: Json, api: str = "openai-completions") -> Json:
    suffix = "/v1" if api == "openai-completions" else ""
    return {
        "baseUrl": urls[0] + suffix,
        "baseUrls": [u + suffix for u in urls[1:]],
        "api": api,
        "models": list(models),
    }


GARBAGE_MODELS = [f"garbage-{kind.replace('_', '-')}:1" for kind in GARBAGE_KINDS]
PAIR_MODELS = (
    "other:1",
    "hang:1",
    "hang-all:1",
    "stall:1",
    "stall-stream:1",
    "garbage-all:1",
    *GARBAGE_MODELS,
)
SOLO_MODELS = ("flood:1", "flood-native:1", "queue:1", "slowstart:1")


def config_for(urls: dict[str, str]) -> Json:
    pair = [urls["a"], urls["b"]]
    providers = {f"p-{m.split(':')[0]}": _provider(pair, _model(m)) for m in PAIR_MODELS}
    solo = [urls["solo"]]
    providers["p-flood"] = _provider(solo, _model("flood:1", maxTokens=1000))
    providers["p-flood-native"] = _provider(
        solo, _model("flood-native:1", maxTokens=1000), api="ollama"
    )
    # Its own first-token limit: queue waits and busy neighbours must not make it flaky.
    providers["p-queue"] = _provider(solo, _model("queue:1", firstTokenTimeoutSeconds=30))
    # Issue 10 item 5: a per-model first-token limit (a CPU worker with long prompts).
    providers["p-slowstart"] = _provider(solo, _model("slowstart:1", firstTokenTimeoutSeconds=10))
    return {
        "providers": providers,
        "cache": {"enabled": False},
        "chat": {
            "requestTimeoutSeconds": 20,
            "firstTokenTimeoutSeconds": 1.5,
            "firstTokenSecondsPer1kPromptTokens": 0,
            "idleTimeoutSeconds": 1,
            "maxRetries": 1,
            "retryBackoffSeconds": 0.05,
            "workerConcurrency": CONCURRENCY,
            "workerQueueLength": QUEUE,
            "workerQueueWaitSeconds": 5,
            "ejectAfterFailures": 2,
            "ejectBaseSeconds": 60,
            "keepAliveSeconds": 0.3,
        },
    }


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    models = {"a": PAIR_MODELS, "b": PAIR_MODELS, "solo": SOLO_MODELS}
    stack = Stack(local_plan(tmp_path_factory.mktemp("faults"), models, config_for))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def gw(faults: Stack) -> Iterator[Stack]:
    reset_standins(faults)
    yield faults
    reset_standins(faults)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def body(model: str, *, stream: bool = False, **extra: Any) -> Json:
    text = f"hello {uuid.uuid4().hex[:8]}"
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream,
            **extra}  # fmt: skip


def chat(stack: Stack, payload: Json, **kwargs: Any) -> requests.Response:
    return requests.post(
        stack.rest_url + "/api/v1/chat/completions",
        json=payload,
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=HANG_GUARD_S,
        **kwargs,
    )


def sse_frames(text: str) -> list[str]:
    return [f for f in text.split("\n\n") if f]


def data_frames(text: str) -> list[Json]:
    frames = [f.removeprefix("data: ") for f in sse_frames(text) if f.startswith("data: ")]
    return [json.loads(f) for f in frames if f != "[DONE]"]


# --- defect 2 and overload: open streams never stall a new request -----------------------


def _open_unread_stream(stack: Stack, model: str, **extra: Any) -> socket.socket:
    """A client that sends a streaming request and never reads a byte of the answer."""
    data = json.dumps(body(model, stream=True, **extra)).encode()
    sock = socket.create_connection(("127.0.0.1", stack.plan.port))
    sock.sendall(
        b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: clawgate\r\n"
        + f"Authorization: Bearer {stack.token}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def test_many_unread_streams_do_not_stall_a_new_request(gw: Stack) -> None:
    # Root cause of defect 2: every request was forwarded to the worker, whose own queue
    # (OLLAMA_NUM_PARALLEL) made a new request wait behind all of them. Now the gateway
    # admits CONCURRENCY per worker, queues QUEUE more and answers the rest at once.
    patch_standin(gw, "solo", num_parallel=CONCURRENCY, token_delay_ms=200)
    sockets = [_open_unread_stream(gw, "queue:1") for _ in range(40)]
    try:
        wait_until(lambda: len(standin_requests(gw, "solo")) >= CONCURRENCY)
        reply = chat(gw, body("queue:1"))
        assert reply.status_code == 429, reply.text
        error = reply.json()["error"]
        assert error["code"] == "upstream_queue_full" and "capacity" in error["message"]
        assert int(reply.headers["Retry-After"]) >= 1
        # The worker only ever saw what it can run plus the bounded queue.
        assert len(standin_requests(gw, "solo")) <= CONCURRENCY + QUEUE
        # Other workers are untouched.
        assert chat(gw, body("other:1")).status_code == 200
    finally:
        for sock in sockets:
            sock.close()


def test_a_stream_waiting_in_the_queue_gets_keepalives(gw: Stack) -> None:
    patch_standin(gw, "solo", num_parallel=CONCURRENCY, token_delay_ms=150)
    busy = [_open_unread_stream(gw, "queue:1", max_tokens=8) for _ in range(CONCURRENCY)]
    try:
        wait_until(lambda: len(standin_requests(gw, "solo")) >= CONCURRENCY)
        reply = chat(gw, body("queue:1", stream=True, max_tokens=5), stream=True)
        assert reply.status_code == 200
        text = reply.content.decode()
    finally:
        for sock in busy:
            sock.close()
    frames = sse_frames(text)
    assert frames[0] == ": keep-alive"
    assert frames[-1] == "data: [DONE]" and data_frames(text)


# --- issue 10 item 5: slow first token ----------------------------------------------------


def test_stream_headers_and_keepalives_come_before_a_slow_first_token(gw: Stack) -> None:
    # ollama sends its headers with the first token, so during prompt evaluation the
    # gateway's keep-alive timer is what starts the stream.
    patch_standin(gw, "solo", first_token_delay_ms=1500)
    payload = body("slowstart:1", stream=True)
    reply = chat(gw, payload, stream=True)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    lines = reply.iter_lines()
    assert next(lines) == b": keep-alive"
    log = standin_requests(gw, "solo")
    mine = [r for r in log if r["body"]["messages"] == payload["messages"]]
    assert [r["first_byte_at"] for r in mine] == [None]  # no token yet, headers already out
    rest = [line for line in lines if line]
    assert rest[-1] == b"data: [DONE]"
    comments = [line for line in rest if not line.startswith(b"data: ")]
    assert set(comments) <= {b": keep-alive"} and len(comments) < len(rest)


# --- defect 4: a flooding worker ---------------------------------------------------------


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("model", ["flood:1", "flood-native:1"])
def test_a_flooding_worker_is_cut_at_the_answer_cap(gw: Stack, model: str) -> None:
    patch_standin(gw, "solo", fail="flood")
    chat_process = gw.children["chat"].process
    assert chat_process is not None
    before = _rss_kb(chat_process.pid)
    for stream in (False, True, False, True):
        reply = chat(gw, body(model, stream=stream, max_tokens=200))
        assert reply.status_code == 200, reply.text
        if stream:
            chunks = data_frames(reply.text)
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
            )
            finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
        else:
            choice = reply.json()["choices"][0]
            text, finish = choice["message"]["content"], choice["finish_reason"]
        assert finish == "length"
        assert 0 < len(text.encode()) <= 200 * 64 + 4096  # answerBytesPerToken default
    # The flood is not buffered: the chat service stays within a few MB of where it was.
    assert _rss_kb(chat_process.pid) - before < 64 * 1024
    # Every flooding connection was closed by the gateway.
    assert {r["status"] for r in standin_requests(gw, "solo")} <= {"error", "cancelled"}


# --- defect 5: garbage from one worker ---------------------------------------------------


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
def test_garbage_from_one_worker_fails_over_to_the_other(gw: Stack, kind: str) -> None:
    model = f"garbage-{kind.replace('_', '-')}:1"
    patch_standin(gw, "a", fail="garbage", garbage_kind=kind)
    for stream in (False, True, False, True):
        reply = chat(gw, body(model, stream=stream, max_tokens=20))
        assert reply.status_code == 200, reply.text
        assert data_frames(reply.text) if stream else reply.json()["choices"]
    assert any(r.get("fail") == "garbage" for r in standin_requests(gw, "a"))


def test_garbage_from_every_worker_is_a_502_bad_response(gw: Stack) -> None:
    for name in PAIR:
        patch_standin(gw, name, fail="garbage", garbage_kind="json")
    reply = chat(gw, body("garbage-all:1"))
    assert reply.status_code == 502
    error = reply.json()["error"]
    assert error["code"] == "upstream_bad_response" and "malformed" in error["message"]


# --- defect 6: stalls, hangs and ejection ------------------------------------------------


def test_a_worker_stalling_mid_answer_is_retried_elsewhere_for_json(gw: Stack) -> None:
    patch_standin(gw, "a", fail="stall", cut_after=2)
    for _ in range(3):
        reply = chat(gw, body("stall:1", max_tokens=50))
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]
    assert any(r.get("fail") == "stall" for r in standin_requests(gw, "a"))


def test_a_stream_stalling_mid_answer_ends_with_an_idle_timeout_event(gw: Stack) -> None:
    for name in PAIR:
        patch_standin(gw, name, fail="stall", cut_after=2)
    reply = requests.post(
        gw.rest_url + "/api/v1/chat/completions",
        json=body("stall-stream:1", stream=True),
        headers={"Authorization": f"Bearer {gw.token}", "x-request-timeout": "25"},
        timeout=HANG_GUARD_S,
    )
    assert reply.status_code == 200
    last = json.loads(sse_frames(reply.text)[-1].removeprefix("data: "))
    assert last["error"]["code"] == "upstream_idle_timeout"


def test_hanging_workers_give_a_504_naming_every_worker(gw: Stack) -> None:
    for name in PAIR:
        patch_standin(gw, name, first_token_delay_ms=60_000)
    reply = chat(gw, body("hang-all:1"))
    assert reply.status_code == 504
    error = reply.json()["error"]
    assert error["code"] == "upstream_timeout"
    assert error["message"].startswith("No first token from any worker")
    assert gw.standins["a"] in error["message"] and gw.standins["b"] in error["message"]


def test_a_hanging_worker_is_ejected_after_failures_in_a_row(gw: Stack) -> None:
    patch_standin(gw, "a", first_token_delay_ms=60_000)
    for _ in range(6):
        reply = chat(gw, body("hang:1", max_tokens=10))
        assert reply.status_code == 200, reply.text  # failed over to b
    # ejectAfterFailures=2: after two first-token timeouts a is out of rotation.
    assert len(standin_requests(gw, "a")) == 2
