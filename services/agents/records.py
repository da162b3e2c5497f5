"""The stored form of an agent: one JSON document per agent, and its proto view.

A record is immutable; an update makes a new revision with a fresh etag. Etags are random
per revision (not derived from the version), so two concurrent writers never produce the
same etag and a retried write can recognise its own result.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any

from google.protobuf import json_format

from clawgate.agents.v1 import agent_service_pb2 as pb

ID_PREFIX = "agt_"
ID_PATTERN = re.compile(r"agt_[0-9a-f]{24}")


def new_id() -> str:
    return ID_PREFIX + secrets.token_hex(12)


def new_etag() -> str:
    return secrets.token_hex(8)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def looks_like_id(text: str) -> bool:
    return ID_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True)
class AgentRecord:
    id: str
    name: str
    model: str
    description: str
    system_prompt: str
    # AgentConfig as JSON with only the fields that are set (proto field names).
    config: dict[str, Any] = field(default_factory=dict)
    tools: tuple[str, ...] = ()  # gateway tool names
    created_ms: int = 0
    updated_ms: int = 0
    version: int = 1
    etag: str = ""
    owner: str = ""  # name of the token that created it; "" (older records): admins only
    shared: bool = False  # readable and usable by every token

    @classmethod
    def create(cls, agent: pb.Agent, at_ms: int, owner: str) -> AgentRecord:
        """A first revision from validated client input; output-only fields are ignored."""
        return cls(
            id=new_id(),
            owner=owner,
            created_ms=at_ms,
            updated_ms=at_ms,
            version=1,
            etag=new_etag(),
            **_content_of(agent),
        )

    def revise(self, agent: pb.Agent, at_ms: int) -> AgentRecord:
        """The next revision with the content of `agent` (id and creation time kept)."""
        return replace(
            self,
            updated_ms=max(at_ms, self.updated_ms),
            version=self.version + 1,
            etag=new_etag(),
            **_content_of(agent),
        )

    def fingerprint(self) -> str:
        """Hash of what the client asked for, to tell a retry from a reused key."""
        content = {
            "name": self.name,
            "model": self.model,
            "description": self.description,
            "system_prompt": self.system_prompt,
            "config": self.config,
            "owner": self.owner,
            "shared": self.shared,
            **({"tools": list(self.tools)} if self.tools else {}),
        }
        encoded = json.dumps(content, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(encoded).hexdigest()

    def to_proto(self) -> pb.Agent:
        # Every field is set, empty or not, so REST clients always see the same keys.
        agent = pb.Agent(
            id=self.id,
            name=self.name,
            model=self.model,
            description=self.description,
            system_prompt=self.system_prompt,
            config=json_format.ParseDict(self.config, pb.AgentConfig()),
            etag=self.etag,
            shared=self.shared,
            owner=self.owner,
            tools=self.tools,
        )
        agent.created_at.FromMilliseconds(self.created_ms)
        agent.updated_at.FromMilliseconds(self.updated_ms)
        return agent

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "model": self.model,
            "description": self.description,
            "system_prompt": self.system_prompt,
            "config": self.config,
            "tools": list(self.tools),
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
            "version": self.version,
            "etag": self.etag,
            "owner": self.owner,
            "shared": self.shared,
        }
        # Raw UTF-8, so the name the Lua scripts decode is byte for byte the index key.
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AgentRecord:
        doc = json.loads(text)
        return cls(
            id=doc["id"],
            name=doc["name"],
            model=doc["model"],
            description=doc.get("description", ""),
            system_prompt=doc.get("system_prompt", ""),
            config=doc.get("config") or {},
            tools=tuple(doc.get("tools") or ()),
            created_ms=int(doc["created_ms"]),
            updated_ms=int(doc["updated_ms"]),
            version=int(doc["version"]),
            etag=doc["etag"],
            owner=doc.get("owner", ""),
            shared=bool(doc.get("shared", False)),
        )


def _content_of(agent: pb.Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "model": agent.model,
        "description": agent.description,
        "system_prompt": agent.system_prompt,
        "config": json_format.MessageToDict(agent.config, preserving_proto_field_name=True),
        "shared": agent.shared,
        "tools": tuple(dict.fromkeys(agent.tools)),
    }
