"""Files and batches in Redis.

Why Redis: every chat replica already shares it, so any replica can serve a file, resume a
batch after a restart, and claim lines without a second coordination system. The price is
memory, hence the bounds: a file holds at most MAX_FILE_BYTES and MAX_LINES lines, and
everything expires after RETENTION_S (files, batches and their results alike).

Layout (`ns` = config.cache.namespace):
- `{ns}:file:{id}`            hash: meta (JSON of the file object + owner), content
- `{ns}:batch:{id}`           string: JSON of the batch record (object + owner, tenant)
- `{ns}:batch:{id}:lines`     list: the validated input lines (JSON {custom_id, body})
- `{ns}:batch:{id}:results`   hash: line index → output/error JSONL line (first write wins)
- `{ns}:batch:{id}:counts`    hash: completed, failed
- `{ns}:batch:{id}:claim:{i}` string: the runner holding line i (leased, renewed)
- `{ns}:batches:{owner}`      sorted set: the owner's batch ids by creation time
- `{ns}:batches:active`       set: batches the runners still have to work on
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis.asyncio as aioredis

from clawgate.common.redis_store import available

MAX_FILE_BYTES = 10 * 1024 * 1024  # Envoy buffers the upload (16 MB per connection)
MAX_LINES = 10_000
RETENTION_S = 7 * 24 * 3600
STORE = "batch"

# Record a line's result once: the first runner to finish a line wins, later ones (a line
# re-run after its runner died) are dropped, so every line is answered exactly once.
_RECORD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


class BatchStore:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._ns = namespace
        self._record = redis.register_script(_RECORD)

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, *parts: object) -> str:
        return ":".join((self._ns, *map(str, parts)))

    # -- files -------------------------------------------------------------------------
    async def put_file(self, meta: dict[str, Any], content: str) -> None:
        key = self._key("file", meta["id"])
        async with available(STORE), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"meta": json.dumps(meta), "content": content})
            pipe.expire(key, RETENTION_S)
            await pipe.execute()

    async def file_meta(self, file_id: str) -> dict[str, Any] | None:
        async with available(STORE):
            raw = await self._redis.hget(self._key("file", file_id), "meta")
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    async def file_content(self, file_id: str) -> str | None:
        async with available(STORE):
            return cast(str | None, await self._redis.hget(self._key("file", file_id), "content"))

    async def delete_file(self, file_id: str) -> bool:
        async with available(STORE):
            return bool(await self._redis.delete(self._key("file", file_id)))

    # -- batches -----------------------------------------------------------------------
    async def create_batch(self, record: dict[str, Any], lines: list[str]) -> None:
        batch_id, owner = record["id"], record["owner"]
        async with available(STORE), self._redis.pipeline(transaction=True) as pipe:
            if lines:
                pipe.rpush(self._key("batch", batch_id, "lines"), *lines)
                pipe.expire(self._key("batch", batch_id, "lines"), RETENTION_S)
            pipe.set(self._key("batch", batch_id), json.dumps(record), ex=RETENTION_S)
            # Scored in microseconds: batches created in the same second keep their order.
            pipe.zadd(self._key("batches", owner), {batch_id: time.time_ns() // 1000})
            pipe.expire(self._key("batches", owner), RETENTION_S)
            if record["status"] == "in_progress":
                pipe.sadd(self._key("batches", "active"), batch_id)
            await pipe.execute()

    async def batch(self, batch_id: str) -> dict[str, Any] | None:
        async with available(STORE):
            raw = await self._redis.get(self._key("batch", batch_id))
        return None if raw is None else cast(dict[str, Any], json.loads(raw))

    async def save_batch(self, record: dict[str, Any], *, active: bool) -> None:
        key = self._key("batch", record["id"])
        async with available(STORE), self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, json.dumps(record), ex=RETENTION_S)
            if active:
                pipe.sadd(self._key("batches", "active"), record["id"])
            else:
                pipe.srem(self._key("batches", "active"), record["id"])
            await pipe.execute()

    async def update_status(self, batch_id: str, status: str, at: int) -> dict[str, Any] | None:
        """Moves a batch to `status` unless it already ended or is being cancelled (one
        transaction, so a cancel and the runner's last step cannot overwrite each other)."""
        key = self._key("batch", batch_id)
        async with available(STORE), self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    record = cast(dict[str, Any], json.loads(raw))
                    if not _may_move(record["status"], status):
                        return record
                    record["status"] = status
                    record[f"{status}_at"] = at
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, json.dumps(record), ex=RETENTION_S)
                    await pipe.execute()
                    return record
                except aioredis.WatchError:
                    continue

    async def page(self, owner: str, after: str | None, limit: int) -> tuple[list[str], bool]:
        """Batch ids newest first, starting after `after`; and whether more follow."""
        key = self._key("batches", owner)
        async with available(STORE):
            start = 0
            if after:
                rank = await self._redis.zrevrank(key, after)
                if rank is None:
                    return [], False
                start = cast(int, rank) + 1
            ids = await self._redis.zrevrange(key, start, start + limit)
        names = cast(list[str], ids)
        return names[:limit], len(names) > limit

    async def active(self) -> set[str]:
        async with available(STORE):
            return cast(set[str], await self._redis.smembers(self._key("batches", "active")))

    async def forget(self, batch_id: str) -> None:
        async with available(STORE):
            await self._redis.srem(self._key("batches", "active"), batch_id)

    async def lines(self, batch_id: str) -> list[str]:
        async with available(STORE):
            return cast(
                list[str], await self._redis.lrange(self._key("batch", batch_id, "lines"), 0, -1)
            )

    async def done_lines(self, batch_id: str) -> set[int]:
        async with available(STORE):
            keys = await self._redis.hkeys(self._key("batch", batch_id, "results"))
        return {int(k) for k in keys}

    async def results(self, batch_id: str) -> dict[int, str]:
        async with available(STORE):
            raw = cast(
                dict[str, str], await self._redis.hgetall(self._key("batch", batch_id, "results"))
            )
        return {int(k): v for k, v in raw.items()}

    async def counts(self, batch_id: str) -> dict[str, int]:
        async with available(STORE):
            raw = cast(
                dict[str, str], await self._redis.hgetall(self._key("batch", batch_id, "counts"))
            )
        return {k: int(v) for k, v in raw.items()}

    async def record(self, batch_id: str, index: int, line: str, outcome: str) -> bool:
        """Stores line `index`'s result; False when it already had one."""
        keys = [self._key("batch", batch_id, "results"), self._key("batch", batch_id, "counts")]
        async with available(STORE):
            return bool(await self._record(keys=keys, args=[index, line, outcome, RETENTION_S]))

    # -- claims (a lease per line, so a dead runner's lines are taken over) ----------------
    async def claim(self, batch_id: str, index: int, runner: str, lease_ms: int) -> bool:
        key = self._key("batch", batch_id, "claim", index)
        async with available(STORE):
            return bool(await self._redis.set(key, runner, nx=True, px=lease_ms))

    async def renew(self, claims: list[tuple[str, int]], lease_ms: int) -> None:
        async with available(STORE), self._redis.pipeline(transaction=False) as pipe:
            for batch_id, index in claims:
                pipe.pexpire(self._key("batch", batch_id, "claim", index), lease_ms)
            await pipe.execute()

    async def release(self, batch_id: str, index: int) -> None:
        async with available(STORE):
            await self._redis.delete(self._key("batch", batch_id, "claim", index))

    async def finish_once(self, batch_id: str) -> bool:
        """Whether this runner is the one to write the batch's output files."""
        key = self._key("batch", batch_id, "finishing")
        async with available(STORE):
            return bool(await self._redis.set(key, "1", nx=True, ex=60))

    async def finish_released(self, batch_id: str) -> None:
        async with available(STORE):
            await self._redis.delete(self._key("batch", batch_id, "finishing"))


ENDED = frozenset({"completed", "failed", "cancelled", "expired"})


def _may_move(current: str, new: str) -> bool:
    if current in ENDED:
        return False
    if current == "cancelling":
        return new == "cancelled"
    return True
