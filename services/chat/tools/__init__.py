"""Server-side tools for agents: the registry (built-ins, plugin tools, MCP servers), the
argument check, and the loop that runs a model's tool calls and continues the chat."""
