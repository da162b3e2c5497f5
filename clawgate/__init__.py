"""Clawgate: a self-hosted AI agent gateway (gRPC and OpenAI-compatible REST)."""

__version__ = "0.1.0"
