"""Sessions in Redis: one list of message documents per session, plus metadata and an index.

Layout (`ns` = the deployment namespace, config.cache.namespace):
- `{ns}:session:{id}`           hash: create_ms, update_ms
- `{ns}:session:{id}:messages`  list of message JSON documents, oldest first
- `{ns}:sessions`               sorted set of ids, all scored 0 (listed in name order)

An append is one Lua script (limit check, push, metadata, index), so concurrent appends
never overshoot the limit and a session never exists half-written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from clawgate.common.redis_store import available

_APPEND = """
local count = redis.call('LLEN', KEYS[2])
local adding = #ARGV - 3
if count + adding > tonumber(ARGV[3]) then
  return {'full', count}
end
redis.call('RPUSH', KEYS[2], unpack(ARGV, 4))
redis.call('HSETNX', KEYS[1], 'create_ms', ARGV[2])
redis.call('HSET', KEYS[1], 'update_ms', ARGV[2])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return {'ok', count + adding, redis.call('HGET', KEYS[1], 'create_ms')}
"""

_DELETE = """
local removed = redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1], KEYS[2])
return removed
"""


@dataclass(frozen=True)
class SessionInfo:
    id: str
    create_ms: int
    update_ms: int
    message_count: int


@dataclass(frozen=True)
class Appended:
    ok: bool  # False: the session would exceed the message limit
    message_count: int
    create_ms: int = 0  # when ok


@dataclass(frozen=True)
class SessionPage:
    sessions: list[SessionInfo]
    last_id: str | None  # set when more sessions follow
    total: int


class SessionStore:
    """Reads and atomic writes of sessions. The client must decode responses."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._redis = client
        self._ns = namespace
        self._append = client.register_script(_APPEND)
        self._delete = client.register_script(_DELETE)

    # Sessions belong to the token name that wrote them: each owner has its own keys and
    # index, so one token never lists or reads another's history (names hold no ':').
    def _index(self, owner: str) -> str:
        return f"{self._ns}:sessions:{owner}"

    def _keys(self, owner: str, session_id: str) -> list[str]:
        meta = f"{self._ns}:session:{owner}:{session_id}"
        return [meta, meta + ":messages", self._index(owner)]

    async def close(self) -> None:
        await self._redis.aclose()

    async def append(
        self, owner: str, session_id: str, messages: list[dict[str, Any]], now_ms: int, limit: int
    ) -> Appended:
        docs = [json.dumps(m, ensure_ascii=False, separators=(",", ":")) for m in messages]
        async with available("session"):
            status, count, *created = await self._append(
                keys=self._keys(owner, session_id), args=[session_id, now_ms, limit, *docs]
            )
        return Appended(status == "ok", int(count), int(created[0]) if created else 0)

    async def get(
        self, owner: str, session_id: str
    ) -> tuple[SessionInfo, list[dict[str, Any]]] | None:
        meta, messages, _ = self._keys(owner, session_id)
        async with available("session"), self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(meta)
            pipe.lrange(messages, 0, -1)
            fields, docs = await pipe.execute()
        if not fields:
            return None
        return _info(session_id, fields, len(docs)), [json.loads(d) for d in docs]

    async def page(self, owner: str, after: str | None, size: int) -> SessionPage:
        """Up to `size` sessions in name order, starting right after `after`."""
        start = f"({after}" if after else "-"
        async with available("session"):
            ids = cast(
                list[str],
                await self._redis.zrangebylex(
                    self._index(owner), start, "+", start=0, num=size + 1
                ),
            )
            more = len(ids) > size
            ids = ids[:size]
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zcard(self._index(owner))
                for session_id in ids:
                    meta, messages, _ = self._keys(owner, session_id)
                    pipe.hgetall(meta)
                    pipe.llen(messages)
                total, *rest = await pipe.execute()
        infos = [
            _info(session_id, rest[2 * i], rest[2 * i + 1])
            for i, session_id in enumerate(ids)
            if rest[2 * i]  # deleted between the two reads: skipped
        ]
        return SessionPage(infos, ids[-1] if more and ids else None, int(total))

    async def delete(self, owner: str, session_id: str) -> bool:
        async with available("session"):
            removed = await self._delete(keys=self._keys(owner, session_id), args=[session_id])
        return bool(removed)


def _info(session_id: str, fields: dict[str, str], count: int) -> SessionInfo:
    return SessionInfo(
        session_id, int(fields.get("create_ms", 0)), int(fields.get("update_ms", 0)), count
    )
