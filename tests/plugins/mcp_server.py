"""A small MCP stdio server for the tests, written with the `mcp` package: the gateway
starts it (mcpServers.notes.command) and offers its allowed tools to agents."""

from __future__ import annotations

import os

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
    server.run("stdio")
