"""Agents in Redis: JSON documents plus a name index and a creation-order index.

Layout (`ns` = the deployment namespace, config.cache.namespace):
- `{ns}:agent:{id}`          string, the agent's JSON document (records.AgentRecord)
- `{ns}:agents:by_name`      hash, name → id (uniqueness of names)
- `{ns}:agents:order`        sorted set, id scored by created_ms (stable listing)
- `{ns}:agents:order:owner:{name}`  the same, of the agents one token name owns
- `{ns}:agents:order:shared` the same, of the agents shared with every token
- `{ns}:agents:idem:{owner}:{key}`  string with a 24 h TTL, {"fingerprint", "agent"} of a
  create (per owner: one caller's key never replays another caller's agent)

Writes that touch more than one key run as Lua scripts (scripts.py). Redis runs with AOF
in every deployment, so an acknowledged write survives a restart.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from clawgate.common.redis_store import available
from clawgate.common.redis_store import connect as connect  # the registry's client
from services.agents import scripts
from services.agents.pagination import Cursor
from services.agents.records import AgentRecord, looks_like_id

IDEMPOTENCY_TTL_S = 24 * 3600


class Outcome(enum.Enum):
    OK = "ok"
    NOT_FOUND = "not_found"
    ETAG_MISMATCH = "etag_mismatch"
    NAME_TAKEN = "name_taken"


@dataclass(frozen=True)
class IdempotencyClaim:
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Created:
    outcome: Outcome
    record: AgentRecord | None = None
    # Set when an earlier create with the same idempotency key is replayed.
    replayed_fingerprint: str | None = None


@dataclass(frozen=True)
class Page:
    records: list[AgentRecord]
    next_cursor: Cursor | None
    total: int


class AgentStore:
    """Reads and atomic writes of agents. The client must decode responses (see connect)."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._redis = client
        self._ns = namespace
        self._by_name = f"{namespace}:agents:by_name"
        self._order = f"{namespace}:agents:order"
        self._shared = f"{namespace}:agents:order:shared"
        self._create = client.register_script(scripts.CREATE)
        self._update = client.register_script(scripts.UPDATE)
        self._delete = client.register_script(scripts.DELETE)
        self._page = client.register_script(scripts.PAGE)
        self._page_visible = client.register_script(scripts.PAGE_VISIBLE)

    def _doc_key(self, agent_id: str) -> str:
        return f"{self._ns}:agent:{agent_id}"

    def _owned(self, owner: str) -> str:
        return f"{self._ns}:agents:order:owner:{owner}"

    def _idem_key(self, owner: str, key: str) -> str:
        return f"{self._ns}:agents:idem:{owner}:{key}"

    async def close(self) -> None:
        await self._redis.aclose()

    async def get(self, id_or_name: str) -> AgentRecord | None:
        """The agent with this id, or else with this name (names never look like ids)."""
        async with available("agent"):
            agent_id: str | None = id_or_name
            if not looks_like_id(id_or_name):
                agent_id = cast(str | None, await self._redis.hget(self._by_name, id_or_name))  # type: ignore[misc]
            if agent_id is None:
                return None
            text = cast(str | None, await self._redis.get(self._doc_key(agent_id)))
        return AgentRecord.from_json(text) if text is not None else None

    def _record_keys(self, record: AgentRecord) -> list[str]:
        """Every key one agent's create or delete script touches."""
        return [
            self._doc_key(record.id),
            self._by_name,
            self._order,
            self._owned(record.owner),
            self._shared,
        ]

    async def create(self, record: AgentRecord, claim: IdempotencyClaim | None) -> Created:
        keys = self._record_keys(record)
        args: list[Any] = [
            record.id,
            record.name,
            record.to_json(),
            record.created_ms,
            "1" if record.shared else "0",
        ]
        if claim is not None:
            keys.append(self._idem_key(record.owner, claim.key))
            stored = {"fingerprint": claim.fingerprint, "agent": record.to_json()}
            args += [json.dumps(stored, ensure_ascii=False), IDEMPOTENCY_TTL_S]
        async with available("agent"):
            reply = await self._create(keys=keys, args=args)
        match reply:
            case ["created"]:
                return Created(Outcome.OK, record)
            case ["replay", previous]:
                stored = json.loads(previous)
                return Created(
                    Outcome.OK,
                    AgentRecord.from_json(stored["agent"]),
                    replayed_fingerprint=stored["fingerprint"],
                )
            case ["name_taken"]:
                return Created(Outcome.NAME_TAKEN)
        raise RuntimeError(f"unexpected reply from the create script: {reply!r}")

    async def replace(self, record: AgentRecord, expected_etag: str) -> Outcome:
        """Store a new revision if the stored one still has `expected_etag`."""
        keys = [self._doc_key(record.id), self._by_name, self._shared]
        args: list[Any] = [
            record.id,
            expected_etag,
            record.to_json(),
            record.name,
            record.etag,
            record.created_ms,
            "1" if record.shared else "0",
        ]
        async with available("agent"):
            reply = await self._update(keys=keys, args=args)
        return Outcome.OK if reply == "updated" else Outcome(reply)

    async def delete(self, record: AgentRecord, expected_etag: str | None) -> Outcome:
        keys = self._record_keys(record)
        async with available("agent"):
            reply = await self._delete(keys=keys, args=[record.id, expected_etag or ""])
        return Outcome.OK if reply == "deleted" else Outcome(reply)

    async def page(self, after: Cursor | None, size: int, visible_to: str | None = None) -> Page:
        """Up to `size` agents in creation order, starting right after `after`: every
        agent, or (with `visible_to`, a token name) the ones it owns and the shared ones."""
        args: list[Any] = [size + 1, "", ""]
        if after is not None:
            args = [size + 1, after.created_ms, after.id]
        async with available("agent"):
            if visible_to is None:
                total, flat = await self._page(keys=[self._order], args=args)
            else:
                keys = [self._owned(visible_to), self._shared]
                total, flat = await self._page_visible(keys=keys, args=args)
            entries = [(flat[i], int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]
            more = len(entries) > size
            entries = entries[:size]
            keys = [self._doc_key(i) for i, _ in entries]
            texts = cast(list[str | None], await self._redis.mget(keys) if keys else [])
        # A doc deleted between the two reads is simply skipped.
        records = [AgentRecord.from_json(t) for t in texts if t is not None]
        next_cursor = Cursor(entries[-1][1], entries[-1][0]) if more and entries else None
        return Page(records, next_cursor, int(total))
