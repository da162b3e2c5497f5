"""The batch runner: runs batch lines through the chat pipeline, in the background.

- Kind to interactive users: lines run with `background=True`, the lowest priority in the
  worker queues (a worker gives batch work only slots nobody waits for, at most
  chat.batchConcurrencyPerWorker of them); the runner itself starts at most that many lines
  per configured worker at once.
- Same path as a chat call: `Pipeline.open` + `Exchange.complete` (validation, agents,
  plugins, cache and single-flight, so identical lines are computed once).
- Survives restarts: each line's result goes to Redis as it finishes; a line is claimed
  with a lease the runner renews while it runs, so a line whose runner died is taken over
  when the lease ends, and `record` keeps the first result only (every line answered once).
  At start the runner resumes every batch in the active set.
- Cancel: the runner stops the batch's running lines at once (cancellation reaches the
  worker), keeps what finished, and writes the output and error files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any

from prometheus_client import Counter, Gauge

from clawgate.common.errors import ApiError, internal
from clawgate.common.logging import request_id
from services.batches import openai_objects as oa
from services.batches.store import ENDED, RETENTION_S, BatchStore
from services.chat.pipeline import CallOptions, Pipeline

log = logging.getLogger("clawgate.batches")

LEASE_MS = 6000  # a dead runner's line is taken over this long after it died
RENEW_S = 1.5
POLL_S = 1.0  # how often the runner looks for work other replicas created
# Failures that say "try later" rather than "this request is wrong": the line is retried.
BUSY_CODES = frozenset({"upstream_queue_full", "upstream_unavailable", "store_unavailable"})
BUSY_PAUSE_S = 5.0

LINES = Counter("clawgate_batch_lines", "Batch lines finished, by outcome.", ["state"])
RUNNING = Gauge("clawgate_batch_lines_running", "Batch lines this chat process runs now.")
ACTIVE = Gauge("clawgate_batches_active", "Batches not finished yet (validating, in progress).")


async def run_line(
    pipeline: Pipeline, body: dict[str, Any], tenant: str | None, background: bool
) -> tuple[int, dict[str, Any]]:
    """One chat completion: (HTTP status, completion or OpenAI error object)."""
    call = CallOptions(
        token_id=tenant, deadline_s=pipeline.settings.request_timeout_s, background=background
    )
    try:
        exchange = await pipeline.open(body, stream=False, call=call)
        return 200, await exchange.complete()
    except ApiError as error:
        return error.status, error.body()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("batch line failed")
        failure = internal()
        return failure.status, failure.body()


class BatchRunner:
    def __init__(self, store: BatchStore, pipeline: Pipeline) -> None:
        self.store = store
        self.pipeline = pipeline
        self._id = secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._running: dict[tuple[str, int], asyncio.Task[None]] = {}
        workers = sum(len(p.workers) for p in pipeline.config.providers) or 1
        self._capacity = max(1, pipeline.settings.batch_concurrency) * workers
        self._tasks: list[asyncio.Task[None]] = []
        self._lines: dict[str, list[str]] = {}
        self._paused_until: dict[str, float] = {}  # batch id → monotonic time
        RUNNING.set_function(lambda: len(self._running))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop()), asyncio.create_task(self._renew())]

    async def close(self) -> None:
        for task in [*self._tasks, *self._running.values()]:
            task.cancel()
        for task in [*self._tasks, *self._running.values()]:
            with contextlib.suppress(BaseException):
                await task

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, batch_id: str) -> None:
        """Stops this process's running lines of the batch (others see it on their poll)."""
        for (running_batch, _), task in list(self._running.items()):
            if running_batch == batch_id:
                task.cancel()
        self.wake()

    # -- the loop ------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before the round: a wake-up during it runs another
            try:
                active = sorted(await self.store.active())
                ACTIVE.set(len(active))
                for batch_id in active:
                    await self._advance(batch_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch runner round failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._wake.wait()

    async def _advance(self, batch_id: str) -> None:
        record = await self.store.batch(batch_id)
        if record is None:  # expired from Redis
            await self.store.forget(batch_id)
            return
        if record["status"] in ENDED:
            await self.store.save_batch(record, active=False)
            return
        if record["status"] == "cancelling":
            self.cancel(batch_id)
            if not any(b == batch_id for b, _ in self._running):
                await self._finish(record, "cancelled")
            return
        if oa.now() >= record["expires_at"]:
            await self._finish(record, "expired")
            return
        done = await self.store.done_lines(batch_id)
        if len(done) >= record["total"]:
            await self._finish(record, "completed")
            return
        free = self._capacity - len(self._running)
        if free <= 0 or time.monotonic() < self._paused_until.get(batch_id, 0.0):
            return
        lines: list[str] | None = None
        for index in range(record["total"]):
            if free <= 0:
                break
            if index in done or (batch_id, index) in self._running:
                continue
            if not await self.store.claim(batch_id, index, self._id, LEASE_MS):
                continue  # another runner has it (or had it: its lease runs out)
            if lines is None:
                lines = await self._lines_of(batch_id)
            item = json.loads(lines[index])
            task = asyncio.create_task(self._run(record, index, item))
            self._running[(batch_id, index)] = task
            free -= 1

    async def _lines_of(self, batch_id: str) -> list[str]:
        """A batch's input lines (they never change: read once per process)."""
        if batch_id not in self._lines:
            self._lines[batch_id] = await self.store.lines(batch_id)
        return self._lines[batch_id]

    async def _run(self, record: dict[str, Any], index: int, item: dict[str, Any]) -> None:
        batch_id = record["id"]
        rid = oa.new_id("req_")
        request_id.set(rid)
        try:
            status, body = await run_line(self.pipeline, item["body"], record.get("tenant"), True)
            if body.get("error", {}).get("code") in BUSY_CODES:
                # The workers are busy or down, or Redis is: not the line's fault. It stays
                # unanswered and runs again after a pause (the 24 h window bounds this).
                self._paused_until[batch_id] = time.monotonic() + BUSY_PAUSE_S
                return
            line = oa.result_line(item["custom_id"], rid, status, body)
            outcome = "completed" if status == 200 else "failed"
            if await self.store.record(batch_id, index, line, outcome):
                LINES.labels(outcome).inc()
        except asyncio.CancelledError:
            pass  # cancelled batch or shutdown: the line stays unanswered (or is re-run)
        except Exception:
            log.exception("batch line could not be stored", extra={"batch": batch_id})
        finally:
            self._running.pop((batch_id, index), None)
            with contextlib.suppress(Exception):
                await self.store.release(batch_id, index)
            self.wake()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            claims = list(self._running)
            if claims:
                try:
                    await self.store.renew(claims, LEASE_MS)
                except Exception:
                    log.warning("could not renew batch line claims", exc_info=True)

    async def _finish(self, record: dict[str, Any], status: str) -> None:
        """Writes the output and error files (once, by one runner) and ends the batch."""
        batch_id = record["id"]
        if not await self.store.finish_once(batch_id):
            return
        if status == "completed":
            record = await self.store.update_status(batch_id, "finalizing", oa.now()) or record
            if record["status"] != "finalizing":  # cancelled meanwhile: next round ends it
                await self.store.finish_released(batch_id)
                return
        results = await self.store.results(batch_id)
        lines = await self.store.lines(batch_id)
        output: list[str] = []
        errors: list[str] = []
        for index, raw in enumerate(lines):
            result = results.get(index)
            if result is None:
                custom_id = json.loads(raw)["custom_id"]
                errors.append(
                    oa.not_run_line(
                        custom_id,
                        f"batch_{status}",
                        f"The batch was {status} before this request ran.",
                    )
                )
            elif json.loads(result)["response"]["status_code"] == 200:
                output.append(result)
            else:
                errors.append(result)
        created = oa.now()
        for kind, rows in (("output_file_id", output), ("error_file_id", errors)):
            if not rows:
                continue
            meta = {
                "id": oa.new_id("file-"),
                "object": "file",
                "bytes": 0,
                "created_at": created,
                "expires_at": created + RETENTION_S,
                "filename": f"{batch_id}_{kind.removesuffix('_file_id')}.jsonl",
                "purpose": "batch_output",
                "owner": record["owner"],
            }
            content = "".join(row + "\n" for row in rows)
            meta["bytes"] = len(content.encode())
            await self.store.put_file(meta, content)
            record[kind] = meta["id"]
        record["status"] = status
        record[f"{status}_at"] = created
        await self.store.save_batch(record, active=False)
        self._lines.pop(batch_id, None)
        self._paused_until.pop(batch_id, None)
        log.info(
            "batch ended",
            extra={
                "batch": batch_id,
                "status": status,
                "output": len(output),
                "errors": len(errors),
            },
        )
