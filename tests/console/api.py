"""The gateway's REST API for console tests (what the pages call, called directly)."""

from __future__ import annotations

from typing import Any

import requests

from clawgate.launcher.stack import Stack


class Rest:
    def __init__(self, stack: Stack) -> None:
        self.base = stack.rest_url + "/api/v1"
        self.headers = {"Authorization": f"Bearer {stack.token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.call(method, path, **kwargs)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def append(self, session: str, *messages: dict[str, Any]) -> Any:
        return self.ok("POST", f"/sessions/{session}/messages", json={"messages": list(messages)})
