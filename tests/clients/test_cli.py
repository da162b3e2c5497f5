"""`clawgate chat|models|agents|completion` against the running stack, as a user runs them:
a fresh process that finds the URL and token where the launcher left them."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import uuid

import requests

from clawgate.client.api import _backoff
from clawgate.client.connection import url_file
from clawgate.client.output import (
    API_ERROR,
    AUTH,
    NOT_FOUND,
    OK,
    UNAVAILABLE,
    UNREACHABLE,
    USAGE,
)
from clawgate.client.spinner import CLEAR, FRAMES
from clawgate.launcher.processes import free_port
from clawgate.launcher.stack import Stack
from tests.clients.conftest import Cli


def _rest(stack: Stack, method: str, path: str, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {stack.token}"}
    return requests.request(method, stack.rest_url + path, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def test_the_launcher_saves_the_url_the_cli_uses(stack: Stack) -> None:
    assert url_file(stack.plan.state_dir).read_text().strip() == stack.rest_url


def test_chat_streams_the_models_answer(cli: Cli) -> None:
    prompt = f"Tell me about gateways {uuid.uuid4().hex[:6]}"
    # Temperature 0 is greedy decoding: the same answer every time, cached or not. So the
    # streamed text must be exactly the content of the whole completion (--json).
    args = ("chat", "--model", "qwen3:32b", "--max-tokens", "40", "--temperature", "0")
    whole = cli(*args, "--json", prompt)
    assert whole.code == OK, whole.err
    streamed = cli(*args, prompt)
    assert streamed.code == OK, streamed.err
    completion = json.loads(whole.out)
    assert completion["object"] == "chat.completion"
    content = completion["choices"][0]["message"]["content"]
    assert content and streamed.out == content + "\n"
    assert streamed.err == ""  # no spinner off a terminal


def test_chat_reads_stdin_and_sends_the_session(cli: Cli, stack: Stack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clawgate.cli", "chat", "--model", "llama3.2:latest",
         "--session", "main", "--json", "-"],
        input="你好，网关", env=cli.env(), cwd=cli.cwd, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == OK, result.stderr
    assert json.loads(result.stdout)["model"] == "llama3.2:latest"


def test_chat_sessions_keep_the_conversation_server_side(cli: Cli, stack: Stack) -> None:
    session = f"cli-{uuid.uuid4().hex[:8]}"
    for text in ("first question", "second question"):
        turn = cli("chat", "--model", "llama3.2:latest", "--session", session, text)
        assert turn.code == OK, turn.err
    stored = requests.get(
        f"{stack.rest_url}/api/v1/sessions/{session}",
        headers={"Authorization": f"Bearer {stack.token}"}, timeout=10,
    ).json()  # fmt: skip
    roles = [m["role"] for m in stored["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert stored["messages"][2]["content"] == "second question"
    assert stored["messages"][1]["content"]  # the streamed answer was kept
    # The second request carried the first turn: the worker saw three messages.
    log = requests.get(stack.standins["main"] + "/_standin/requests", timeout=10).json()
    bodies = [r["body"] for r in log["requests"] if isinstance(r.get("body"), dict)]
    seen = [b["messages"] for b in bodies if b.get("messages", [{}])[-1].get("content")
            == "second question"]  # fmt: skip
    assert seen and len(seen[-1]) == 3


def test_agents_create_get_list_chat_delete(cli: Cli) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = cli("agents", "create", name, "--model", "qwen3:32b", "--description", "from the CLI",
                  "--system-prompt", "Be brief.", "--temperature", "0.3", "--json")  # fmt: skip
    assert created.code == OK, created.err
    agent = json.loads(created.out)
    assert agent["name"] == name and agent["config"]["temperature"] == 0.3

    shown = cli("agents", "get", name)
    assert shown.code == OK
    assert f"id: {agent['id']}" in shown.out.splitlines()
    assert "config.temperature: 0.3" in shown.out.splitlines()

    listed = cli("agents", "list")
    row = next(line for line in listed.out.splitlines() if agent["id"] in line)
    assert name in row and "qwen3:32b" in row and "from the CLI" in row
    assert name in cli("agents", "list", "-q").out.split()

    chat = cli("chat", "--agent", name, "--json", "Hello agent")
    assert chat.code == OK, chat.err
    assert json.loads(chat.out)["choices"][0]["message"]["content"]

    deleted = cli("agents", "delete", agent["id"])
    assert (deleted.code, deleted.out.strip()) == (OK, f"deleted {agent['id']}")
    gone = cli("agents", "get", name)
    assert gone.code == NOT_FOUND
    assert "(code: agent_not_found" in gone.err and "HTTP 404" in gone.err


def test_models_match_the_api(cli: Cli, stack: Stack) -> None:
    api = _rest(stack, "GET", "/api/v1/models").json()
    as_json = cli("models", "--json")
    assert as_json.code == OK
    assert json.loads(as_json.out)["data"] == api["data"]
    assert cli("models", "-q").out.split() == [m["id"] for m in api["data"]]
    table = cli("models").out.splitlines()
    assert table[0].split() == ["ID", "PROVIDER", "AVAILABLE", "CONTEXT", "NAME"]
    qwen = next(line for line in table if line.startswith("qwen3:32b "))
    assert qwen.split()[1:4] == ["my-ollama", "yes", "32000"]
    ghost = next(line for line in table if line.startswith("ghost:7b "))
    assert ghost.split()[2] == "no"  # configured, not pulled


def test_errors_show_the_api_code_and_exit_codes(cli: Cli, tmp_path: object) -> None:
    unknown = cli("chat", "--model", "no-such-model:1b", "hi")
    assert unknown.code == NOT_FOUND
    assert "code: model_not_found" in unknown.err and "HTTP 404" in unknown.err
    assert unknown.out == ""

    as_json = cli("chat", "--model", "no-such-model:1b", "--json", "hi")
    assert json.loads(as_json.out)["error"]["code"] == "model_not_found"

    invalid = cli("chat", "--model", "qwen3:32b", "--temperature", "9", "hi")
    assert invalid.code == API_ERROR
    assert "param: temperature" in invalid.err and "HTTP 400" in invalid.err

    wrong = cli("--token", "cg-wrong", "models")
    assert wrong.code == AUTH and "code: invalid_api_key" in wrong.err

    down = cli("--url", f"http://127.0.0.1:{free_port()}", "models")
    assert down.code == UNREACHABLE and "clawgate onboard" in down.err

    both = cli("chat", "--agent", "a", "--model", "m", "hi")
    assert both.code == USAGE and "not allowed with" in both.err


def test_no_token_says_to_onboard(cli: Cli, tmp_path: object) -> None:
    env = {**cli.env(), "CLAWGATE_STATE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "clawgate.cli", "models"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == AUTH and "clawgate onboard" in result.stderr


def test_spinner_on_a_terminal_until_the_first_token(cli: Cli) -> None:
    """stderr on a pseudo-terminal: a spinner is drawn, then erased before the answer."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "clawgate.cli", "chat", "--model", "qwen3:32b",
         f"spin {uuid.uuid4().hex}"],
        env=cli.env(), cwd=cli.cwd, stdout=subprocess.PIPE, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    stdout, _ = process.communicate(timeout=60)
    terminal = b""
    while select.select([leader], [], [], 0)[0]:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(leader)
    assert process.returncode == OK
    shown = terminal.decode()
    assert shown.startswith(f"\r{FRAMES[0]} waiting for the model")
    assert shown.endswith(CLEAR)
    assert stdout.decode().strip()


def test_bash_completion_follows_the_parser(cli: Cli) -> None:
    script = cli("completion", "bash").out

    def complete(*words: str) -> list[str]:
        line = " ".join(["clawgate", *words])
        probe = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; _clawgate; "
                 'printf "%s\\n" "${COMPREPLY[@]}"')  # fmt: skip
        # `clawgate` on PATH, as after `pip install`: the script asks it for model ids.
        path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        result = subprocess.run(["bash", "-c", probe], env={**cli.env(), "PATH": path},
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert {"chat", "models", "agents", "completion"} <= set(complete(""))
    assert complete("ag") == ["agents"]
    assert set(complete("agents", "")) >= {"list", "create", "get", "delete"}
    assert "--session" in complete("chat", "--se")
    # Values of --model come from the running gateway.
    assert "qwen3:32b" in complete("chat", "--model", "qwen3:3")


def test_backoff_follows_the_api_advice() -> None:
    assert [_backoff(n, None) for n in range(3)] == [0.5, 1.0, 2.0]
    assert _backoff(0, "3") == 3.0 and _backoff(0, "600") == 30.0


def _patch_standin(stack: Stack, **changes: object) -> None:
    reply = requests.patch(stack.standins["main"] + "/_standin/settings", json=changes, timeout=5)
    assert reply.status_code == 200, reply.text


def test_worker_failures_show_their_code_and_exit_6(cli: Cli, stack: Stack) -> None:
    """Out of GPU memory before the answer, and a stream cut after it started: the text
    so far is kept, the failure is named, and the exit code says retrying may help."""
    try:
        _patch_standin(stack, fail="oom")
        oom = cli("--retries", "0", "chat", "--model", "qwen3:32b", f"oom {uuid.uuid4().hex}")
        assert oom.code == UNAVAILABLE, oom.err
        assert "code: insufficient_gpu_memory" in oom.err and "HTTP 503" in oom.err

        _patch_standin(stack, fail="cut", cut_after=3)
        cut = cli("chat", "--model", "llama3.2:latest", f"cut {uuid.uuid4().hex}")
        assert cut.code == UNAVAILABLE, cut.err
        # The chunks that arrived before the cut, on their own line; then the error frame.
        assert cut.out.strip() and cut.out.endswith("\n")
        assert "code: upstream_incomplete" in cut.err
    finally:
        requests.post(stack.standins["main"] + "/_standin/reset", timeout=5).raise_for_status()
