"""The CLI in a real subprocess: ready line, serving, clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_cli_prints_ready_line_serves_and_stops() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ollama_standin",
        "--port",
        str(port),
        "--model",
        "qwen3:32b",
        "--model",
        "llama3.2:latest",
        "--token-delay-ms",
        "1",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=15)
        assert line.decode().strip() == f"ollama stand-in listening on http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/") as resp:
                assert await resp.text() == "Ollama is running"
            async with http.get(f"http://127.0.0.1:{port}/api/tags") as resp:
                names = [m["name"] for m in (await resp.json())["models"]]
        assert names == ["qwen3:32b", "llama3.2:latest"]
    finally:
        if proc.returncode is None:
            proc.terminate()
        code = await asyncio.wait_for(proc.wait(), timeout=10)
    assert code == 0, (await proc.stderr.read()).decode() if proc.stderr else code
