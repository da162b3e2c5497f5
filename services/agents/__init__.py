"""Agent registry service: agents (a named model, system prompt and defaults) in Redis."""
