"""A small MCP server for the tests, written with the `mcp` package: over stdio the
gateway starts it (mcpServers.notes.command); with `--http PORT` it serves streamable
HTTP on 127.0.0.1 (mcpServers.remote.url)."""

from __future__ import annotations

import os
import sys

from mcp.server.fastmcp import FastMCP

server = FastMCP("notes")


@server.tool()
def word_length(word: str) -> str:
    """Count the letters of a word."""
    return f"{word} has {len(word)} letters"


@server.tool()
def crash() -> str:
    """Exit the server process at once (the gateway must start it again)."""
    os._exit(3)


@server.tool()
def secret() -> str:
    """Not in the allow-list: the gateway must never offer it."""
    return "this must not be reachable"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        server.settings.host, server.settings.port = "127.0.0.1", int(sys.argv[2])
        server.run("streamable-http")
    else:
        server.run("stdio")
