from __future__ import annotations

import json
import stat
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2

from clawgate.common.auth import (
    Authenticator,
    AuthResult,
    auth_error,
    bearer_token,
    ensure_token_file,
)
from clawgate.common.errors import ApiError


def test_token_file_is_created_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "token"
    first = ensure_token_file(path)
    assert ensure_token_file(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) > 30


def test_bearer_tokens_are_checked() -> None:
    auth = Authenticator(["right"])
    assert auth.check_metadata([("authorization", "Bearer right")]) is AuthResult.OK
    assert auth.check_metadata([("authorization", "bearer right")]) is AuthResult.OK
    assert auth.check_metadata([("authorization", "Bearer wrong")]) is AuthResult.MISMATCH
    assert auth.check_metadata([("authorization", "Basic cmlnaHQ=")]) is AuthResult.MISSING
    assert auth.check_metadata([]) is AuthResult.MISSING
    assert bearer_token([("x", "y")]) is None


def test_tokens_from_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# comment\nfile-token\n")
    auth = Authenticator.from_env({"CLAWGATE_TOKEN": "a,b", "CLAWGATE_TOKEN_FILE": str(path)})
    for token in ("a", "b", "file-token"):
        assert auth.check(token) is AuthResult.OK
    assert auth.token_id("a") != auth.token_id("b")
    assert "file-token" not in auth.token_id("file-token")


def test_auth_errors_have_the_documented_messages() -> None:
    missing, mismatch = auth_error(AuthResult.MISSING), auth_error(AuthResult.MISMATCH)
    assert missing.message == "unauthorized: gateway token missing"
    assert mismatch.message == "unauthorized: gateway token mismatch"
    assert missing.status == mismatch.status == 401
    assert missing.grpc_code is grpc.StatusCode.UNAUTHENTICATED


def test_api_error_renders_openai_body_and_grpc_details() -> None:
    err = ApiError(503, "ollama busy, 稍后再试", code="upstream_busy", retry_after=2)
    md = dict(err.trailing_metadata())
    body = json.loads(str(md["x-error-json"]))
    assert body == {
        "error": {
            "message": "ollama busy, 稍后再试",
            "type": "api_error",
            "param": None,
            "code": "upstream_busy",
        }
    }
    assert str(md["x-error-json"]).isascii()  # gRPC metadata must be ASCII
    assert md["x-http-status"] == "503" and md["retry-after"] == "2"
    status = status_pb2.Status.FromString(bytes(md["grpc-status-details-bin"]))  # type: ignore[arg-type]
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    retry = error_details_pb2.RetryInfo()
    assert status.details[1].Unpack(retry) and retry.retry_delay.seconds == 2
    assert err.retryable
    assert not ApiError(400, "bad", param="temperature").retryable
