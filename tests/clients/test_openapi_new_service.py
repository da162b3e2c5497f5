"""A service added to the registry shows up in the OpenAPI document with no generator edit:
here a sessions API compiled from a proto written for the test."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from clawgate.common.services import SERVICES, ServiceDef
from clawgate.openapi import generator
from clawgate.openapi.descriptors import Descriptors

ROOT = Path(__file__).resolve().parents[2]

SESSIONS_PROTO = """
syntax = "proto3";
package clawgate.sessions.v1;
import "google/api/annotations.proto";
import "google/protobuf/timestamp.proto";

// SessionService keeps conversations.
service SessionService {
  // Appends a message to a session.
  rpc AppendMessage(AppendMessageRequest) returns (Session) {
    option (google.api.http) = {post: "/api/v1/sessions/{session}/messages" body: "*"};
  }
  // Lists sessions.
  rpc ListSessions(ListSessionsRequest) returns (ListSessionsResponse) {
    option (google.api.http) = {get: "/api/v1/sessions"};
  }
  // Internal only: no REST binding.
  rpc Compact(Session) returns (Session);
}

// A conversation.
message Session {
  // Its name, e.g. `main`.
  string name = 1;
  // Messages so far.
  repeated Message messages = 2;
  // Labels.
  map<string, string> labels = 3;
  // Last change.
  google.protobuf.Timestamp updated_at = 4;
}

// One message.
message Message {
  // `user` or `assistant`.
  string role = 1;
  // The text.
  string content = 2;
}

// Request of AppendMessage.
message AppendMessageRequest {
  // Session name.
  string session = 1;
  // What to append.
  Message message = 2;
}

// Request of ListSessions.
message ListSessionsRequest {
  // Page size.
  int32 page_size = 1;
  // Only sessions updated since.
  google.protobuf.Timestamp since = 2;
}

// Response of ListSessions.
message ListSessionsResponse {
  // The sessions.
  repeated Session sessions = 1;
}
"""


@pytest.fixture
def with_sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Descriptors:
    source = tmp_path / "clawgate" / "sessions" / "v1" / "session_service.proto"
    source.parent.mkdir(parents=True)
    source.write_text(SESSIONS_PROTO)
    out = tmp_path / "all.pb"
    protos = [str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto")]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(tmp_path), "-I", str(ROOT / "proto"),
         "-I", sysconfig.get_paths()["purelib"], f"--descriptor_set_out={out}",
         "--include_imports", "--include_source_info",
         "clawgate/sessions/v1/session_service.proto", *protos],
        check=True, capture_output=True,
    )  # fmt: skip
    services = (*SERVICES, ServiceDef("sessions", ("clawgate.sessions.v1.SessionService",), 50059))
    monkeypatch.setattr(generator, "SERVICES", services)
    monkeypatch.setattr(
        generator, "grpc_service_names", lambda: [n for s in services for n in s.grpc_services]
    )
    return Descriptors.load(out)


def test_a_new_service_is_documented(with_sessions: Descriptors) -> None:
    doc: dict[str, Any] = generator.generate(with_sessions)
    assert "/api/v1/models" in doc["paths"]  # the existing services stay
    assert {"name": "SessionService", "description": "SessionService keeps conversations."} in (
        doc["tags"]
    )

    append = doc["paths"]["/api/v1/sessions/{session}/messages"]["post"]
    assert append["summary"] == "Appends a message to a session"
    assert [(p["name"], p["in"], p["required"]) for p in append["parameters"]] == [
        ("session", "path", True)
    ]
    body = append["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"message"}  # body "*" minus the path field
    assert body["properties"]["message"]["$ref"].endswith("clawgate.sessions.v1.Message")

    listing = doc["paths"]["/api/v1/sessions"]["get"]
    assert [(p["name"], p["in"], p["schema"]) for p in listing["parameters"]] == [
        ("page_size", "query", {"type": "integer", "format": "int32"}),
        ("since", "query", {"type": "string", "format": "date-time"}),
    ]
    operations = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    assert "Compact" not in operations  # gRPC only

    session = doc["components"]["schemas"]["clawgate.sessions.v1.Session"]["properties"]
    assert session["labels"]["type"] == "object"
    assert session["labels"]["additionalProperties"] == {"type": "string"}
    assert session["messages"]["type"] == "array"
    assert session["updated_at"]["format"] == "date-time"
