"""The CLI's HTTP client against a scripted loopback server: retries of 429/5xx with the
API's backoff and the same Idempotency-Key, no retry of 4xx, and error bodies that are not
JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clawgate.client.api import Client, GatewayError
from clawgate.client.connection import Connection


@dataclass
class Script:
    """Answers (status, headers, body) in order; records what each request carried."""

    answers: list[tuple[int, dict[str, str], bytes]]
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script.seen.append({k.lower(): v for k, v in self.headers.items()})
            status, headers, body = script.answers.pop(0)
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def _error(code: str) -> bytes:
    return json.dumps({"error": {"message": code, "type": "api_error", "param": None,
                                 "code": code}}).encode()  # fmt: skip


def test_retries_busy_answers_with_backoff_and_one_idempotency_key(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.answers = [
        (503, {"Retry-After": "2"}, _error("upstream_busy")),
        (429, {}, _error("rate_limited")),
        (200, {"Content-Type": "application/json"}, b'{"id": "agt_1"}'),
    ]
    delays: list[float] = []
    client = Client(Connection(url, "cg-t"), retries=2, sleep=delays.append)
    created = client.call("POST", "/agents", {"name": "a"}, {"Idempotency-Key": "k1"})
    assert created == {"id": "agt_1"}
    assert delays == [2.0, 1.0]  # Retry-After first, then 0.5 * 2**1
    assert [s["idempotency-key"] for s in script.seen] == ["k1", "k1", "k1"]
    assert all(s["authorization"] == "Bearer cg-t" for s in script.seen)


def test_gives_up_after_the_retries(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, {}, _error("upstream_busy"))] * 2
    client = Client(Connection(url, "cg-t"), retries=1, sleep=lambda _: None)
    with pytest.raises(GatewayError) as failed:
        client.call("GET", "/models")
    assert (failed.value.status, failed.value.code) == (503, "upstream_busy")
    assert len(script.seen) == 2


def test_client_errors_are_not_retried_and_text_bodies_are_kept(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.answers = [(400, {"Content-Type": "text/plain"}, b"Unexpected end of string")]
    client = Client(Connection(url, "cg-t"), retries=3, sleep=lambda _: None)
    with pytest.raises(GatewayError) as failed:
        client.call("GET", "/models")
    assert (failed.value.status, failed.value.message) == (400, "Unexpected end of string")
    assert failed.value.code is None and len(script.seen) == 1
