"""BatchService: OpenAI's Files and Batch API (REST through Envoy, or gRPC), plus the
streaming batch for gRPC clients.

Each token sees only its own files and batches (another token's id is a 404). Answers
are OpenAI's JSON objects in an HttpBody, so the `openai` SDK reads them unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from google.api import httpbody_pb2

from clawgate.batches.v1 import batch_service_pb2 as pb
from clawgate.batches.v1 import batch_service_pb2_grpc as pb_grpc
from clawgate.common.errors import ApiError, invalid, not_found, quote
from clawgate.common.server import Context
from clawgate.common.tokens import current_principal
from services.batches import openai_objects as oa
from services.batches.multipart import parse_form
from services.batches.runner import BatchRunner, run_line
from services.batches.store import MAX_FILE_BYTES, RETENTION_S, BatchStore
from services.chat.request import parse_json_body

log = logging.getLogger("clawgate.batches")

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["BatchService"].full_name
JSON_TYPE = "application/json"
JSONL_TYPE = "application/jsonl"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
STREAM_IN_FLIGHT = 16  # requests of one streaming batch running at once


class BatchServicer(pb_grpc.BatchServiceServicer):
    def __init__(self, store: BatchStore, runner: BatchRunner) -> None:
        self._store = store
        self._runner = runner

    # -- files -------------------------------------------------------------------------
    async def CreateFile(
        self, request: pb.CreateFileRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        if len(request.body.data) > MAX_FILE_BYTES + 64 * 1024:
            raise _too_large(len(request.body.data))
        form = parse_form(request.body.content_type, request.body.data)
        purpose = form.get("purpose")
        if purpose is None or purpose.data.decode(errors="replace") != "batch":
            got = purpose.data.decode(errors="replace") if purpose else None
            raise invalid(
                f"purpose must be 'batch' (the only purpose this gateway stores), got "
                f"{quote(got) if got else 'none'}.",
                "purpose",
            )
        upload = form.get("file")
        if upload is None:
            raise invalid("The form has no 'file' field: attach the JSONL file.", "file")
        if len(upload.data) > MAX_FILE_BYTES:
            raise _too_large(len(upload.data))
        try:
            content = upload.data.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid("The file must be UTF-8 JSONL text.", "file") from None
        created = oa.now()
        meta = {
            "id": oa.new_id("file-"),
            "object": "file",
            "bytes": len(upload.data),
            "created_at": created,
            "expires_at": created + RETENTION_S,
            "filename": upload.filename or "upload.jsonl",
            "purpose": "batch",
            "owner": _owner(),
        }
        await self._store.put_file(meta, content)
        log.info("file uploaded", extra={"file": meta["id"], "bytes": meta["bytes"]})
        return _json(oa.file_object(meta))

    async def GetFile(self, request: pb.GetFileRequest, context: Context) -> httpbody_pb2.HttpBody:
        return _json(oa.file_object(await self._own_file(request.file_id)))

    async def GetFileContent(
        self, request: pb.GetFileContentRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        await self._own_file(request.file_id)
        content = await self._store.file_content(request.file_id)
        if content is None:
            raise _file_not_found(request.file_id)
        return httpbody_pb2.HttpBody(content_type=JSONL_TYPE, data=content.encode())

    async def DeleteFile(
        self, request: pb.DeleteFileRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        await self._own_file(request.file_id)
        deleted = await self._store.delete_file(request.file_id)
        return _json({"id": request.file_id, "object": "file", "deleted": deleted})

    async def _own_file(self, file_id: str) -> dict[str, Any]:
        meta = await self._store.file_meta(file_id) if file_id else None
        if meta is None or meta.get("owner") != _owner():
            raise _file_not_found(file_id)
        return meta

    # -- batches -----------------------------------------------------------------------
    async def CreateBatch(
        self, request: pb.CreateBatchRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        raw = parse_json_body(request.body.data)
        input_file_id = raw.get("input_file_id")
        if not isinstance(input_file_id, str) or not input_file_id:
            raise invalid(
                "input_file_id is required: upload a file with purpose=batch first.",
                "input_file_id",
            )
        if raw.get("endpoint") != oa.ENDPOINT:
            raise invalid(
                f"endpoint must be {oa.ENDPOINT!r} (the only one batches run), got "
                f"{quote(raw.get('endpoint'))}.",
                "endpoint",
            )
        if raw.get("completion_window", oa.COMPLETION_WINDOW) != oa.COMPLETION_WINDOW:
            raise invalid(
                f"completion_window must be {oa.COMPLETION_WINDOW!r}.", "completion_window"
            )
        metadata = raw.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and len(metadata) <= 16
            and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
        ):
            raise invalid(
                "metadata must be an object of at most 16 string values (512 characters each).",
                "metadata",
            )
        await self._own_file(input_file_id)
        content = await self._store.file_content(input_file_id)
        if content is None:
            raise _file_not_found(input_file_id)
        lines, errors = oa.validate_input(content)
        created = oa.now()
        principal = current_principal.get()
        record: dict[str, Any] = {
            "id": oa.new_id("batch_"),
            "object": "batch",
            "endpoint": oa.ENDPOINT,
            "errors": None,
            "input_file_id": input_file_id,
            "completion_window": oa.COMPLETION_WINDOW,
            "status": "in_progress",
            "created_at": created,
            "in_progress_at": created,
            "expires_at": created + oa.WINDOW_S,
            "metadata": metadata,
            "total": len(lines),
            "owner": _owner(),
            "tenant": principal.tenant if principal is not None else None,
        }
        if errors:  # as OpenAI: an invalid input file fails the batch before it runs
            record |= {
                "status": "failed",
                "in_progress_at": None,
                "failed_at": created,
                "total": 0,
                "errors": {"object": "list", "data": [e.as_dict() for e in errors[:100]]},
            }
            lines = []
        await self._store.create_batch(record, lines)
        if lines:
            self._runner.wake()
        log.info(
            "batch created",
            extra={"batch": record["id"], "lines": len(lines), "status": record["status"]},
        )
        return _json(oa.batch_object(record, {}))

    async def GetBatch(
        self, request: pb.GetBatchRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        record = await self._own_batch(request.batch_id)
        return _json(oa.batch_object(record, await self._store.counts(record["id"])))

    async def ListBatches(
        self, request: pb.ListBatchesRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        if not 0 <= request.limit <= MAX_LIMIT:
            raise invalid(f"limit must be between 1 and {MAX_LIMIT}, got {request.limit}.", "limit")
        limit = request.limit or DEFAULT_LIMIT
        ids, more = await self._store.page(_owner(), request.after or None, limit)
        data = []
        for batch_id in ids:
            record = await self._store.batch(batch_id)
            if record is not None:
                data.append(oa.batch_object(record, await self._store.counts(batch_id)))
        return _json(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": more,
            }
        )

    async def CancelBatch(
        self, request: pb.CancelBatchRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        record = await self._own_batch(request.batch_id)
        if record["status"] in ("validating", "in_progress"):
            record = await self._store.update_status(record["id"], "cancelling", oa.now()) or record
            self._runner.cancel(record["id"])
        elif record["status"] != "cancelling":
            raise ApiError(
                409,
                f"The batch {record['id']} is {record['status']} and can no longer be cancelled.",
                code="batch_not_cancellable",
                param="batch_id",
            )
        return _json(oa.batch_object(record, await self._store.counts(record["id"])))

    async def _own_batch(self, batch_id: str) -> dict[str, Any]:
        record = await self._store.batch(batch_id) if batch_id else None
        if record is None or record.get("owner") != _owner():
            raise not_found(
                f"No batch {quote(batch_id)}: list your batches with GET /api/v1/batches.",
                "batch_id",
                "batch_not_found",
            )
        return record

    # -- streaming batch ---------------------------------------------------------------
    async def StreamBatchChatCompletions(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[pb.StreamBatchChatCompletionsRequest],
        context: Context,
    ) -> None:
        """Reads requests only while fewer than STREAM_IN_FLIGHT run (flow control: the
        client's writes block on gRPC's window), writes each result when it is done. The
        requests are batch work: lowest priority in the worker queues, like batch lines."""
        principal = current_principal.get()
        tenant = principal.tenant if principal is not None else None
        slots = asyncio.Semaphore(STREAM_IN_FLIGHT)
        write_lock = asyncio.Lock()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(item: pb.StreamBatchChatCompletionsRequest) -> None:
            try:
                try:
                    body = json.loads(item.body)
                    if not isinstance(body, dict):
                        raise ValueError
                except ValueError:
                    status, result = 400, invalid("body must be a JSON object", "body").body()
                else:
                    status, result = await run_line(self._runner.pipeline, body, tenant, True)
                response = pb.StreamBatchChatCompletionsResponse(
                    custom_id=item.custom_id, status_code=status, body=json.dumps(result).encode()
                )
                async with write_lock:
                    await context.write(response)
            finally:
                slots.release()

        try:
            async for item in request_iterator:
                await slots.acquire()
                task = asyncio.create_task(answer(item))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()


def _owner() -> str:
    principal = current_principal.get()
    if principal is None:  # every batch method needs a token: never reached
        raise ApiError(401, "unauthorized: gateway token missing", code="missing_token")
    return principal.name


def _json(value: dict[str, Any]) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=JSON_TYPE, data=json.dumps(value).encode())


def _file_not_found(file_id: str) -> ApiError:
    return not_found(
        f"No file {quote(file_id)}: upload it with POST /api/v1/files.", "file_id", "file_not_found"
    )


def _too_large(size: int) -> ApiError:
    return ApiError(
        413,
        f"The file is {size} bytes; at most {MAX_FILE_BYTES} bytes are allowed: split it.",
        param="file",
        code="file_too_large",
    )
