"""Re-record tests/data/llama_cpp/ from a real llama-server (build it with `make real-model`).

    .venv/bin/python -m tests.tools.record_llama

Each response body is written exactly as the server sent it. The tests that replay them
(tests/chat/test_transcripts.py) name the numbers they expect: update them with the files.
"""

from __future__ import annotations

import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tests.realmodel.llama import HOW_TO_BUILD, LlamaServer, available
from tests.replay import DATA

KEY = "sekret"  # a throwaway server's key, recorded in the README
# response file, method, path, request file (or a literal body), whether the key is sent
RECORDINGS: tuple[tuple[str, str, str, str | bytes | None, bool], ...] = (
    ("chat.response.json", "POST", "/v1/chat/completions", "chat.request.json", True),
    ("stream.response.sse", "POST", "/v1/chat/completions", "stream.request.json", True),
    ("overflow.response.json", "POST", "/v1/chat/completions", "overflow.request.json", True),
    ("unauthorized.response.json", "POST", "/v1/chat/completions", "chat.request.json", False),
    ("models.response.json", "GET", "/v1/models", None, True),
    ("props.response.json", "GET", "/props", None, True),
    ("health.response.json", "GET", "/health", None, False),
    ("api-chat.response.json", "POST", "/api/chat", b"{}", True),
)


def record(server: LlamaServer, folder: Path) -> None:
    for name, method, path, request, keyed in RECORDINGS:
        body = (folder / request).read_bytes() if isinstance(request, str) else request
        call = urllib.request.Request(server.url + path, data=body, method=method)
        call.add_header("Content-Type", "application/json")
        if keyed:
            call.add_header("Authorization", f"Bearer {KEY}")
        try:
            with urllib.request.urlopen(call, timeout=60) as reply:
                data = reply.read()
        except urllib.error.HTTPError as err:  # error answers are transcripts too
            data = err.read()
        (folder / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


def main() -> None:
    if not available():
        raise SystemExit(HOW_TO_BUILD)
    with tempfile.TemporaryDirectory() as logs:
        server = LlamaServer(Path(logs), api_key=KEY).start()
        try:
            record(server, DATA / "llama_cpp")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
