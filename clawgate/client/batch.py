"""`clawgate batch submit FILE.jsonl [--wait]`: upload, create, follow, download."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

from clawgate.client import output
from clawgate.client.api import Client

ENDED = frozenset({"completed", "failed", "cancelled", "expired"})
BAR_WIDTH = 30


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with text `fields` and one `file` field."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/jsonl\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def progress_line(batch: dict[str, Any]) -> str:
    counts = batch.get("request_counts") or {}
    total, done = counts.get("total", 0), counts.get("completed", 0) + counts.get("failed", 0)
    filled = BAR_WIDTH * done // total if total else 0
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    return f"[{bar}] {done}/{total} ({counts.get('failed', 0)} failed) {batch['status']}"


def submit(args: argparse.Namespace, client: Client) -> int:
    source = Path(args.file)
    body, content_type = multipart({"purpose": "batch"}, source.name, source.read_bytes())
    upload = client.upload("/files", body, content_type)
    # Not retried: creating a batch is not idempotent (a retry could run the file twice).
    once = Client(client.connection, client.timeout, retries=0)
    batch = once.call(
        "POST",
        "/batches",
        {"input_file_id": upload["id"], "endpoint": "/v1/chat/completions",
         "completion_window": "24h"},
    )  # fmt: skip
    if not args.wait:
        _report(args, batch, sys.stdout)
        return _exit_code(batch)
    batch = follow(client, batch, args.interval, sys.stderr)
    out = Path(args.output or source.with_suffix(".output.jsonl"))
    for key, path in (("output_file_id", out), ("error_file_id", out.with_suffix(".errors.jsonl"))):
        if batch.get(key):
            path.write_bytes(client.download(f"/files/{batch[key]}/content"))
            print(f"{key.removesuffix('_file_id')}: {path}", file=sys.stderr)
    _report(args, batch, sys.stdout)
    return _exit_code(batch)


def follow(client: Client, batch: dict[str, Any], interval: float, err: TextIO) -> dict[str, Any]:
    """Polls until the batch ends, drawing a progress bar on `err` (a terminal)."""
    tty = err.isatty()
    while batch["status"] not in ENDED:
        if tty:
            err.write("\r" + progress_line(batch))
            err.flush()
        time.sleep(interval)
        batch = client.call("GET", f"/batches/{batch['id']}")
    err.write(("\r" if tty else "") + progress_line(batch) + "\n")
    return batch


def _report(args: argparse.Namespace, batch: dict[str, Any], out: TextIO) -> None:
    if args.json:
        output.print_json(batch)
        return
    print(f"{batch['id']} {batch['status']}", file=out)
    for error in (batch.get("errors") or {}).get("data") or []:
        print(f"  line {error.get('line')}: {error.get('message')} ({error.get('code')})", file=out)


def _exit_code(batch: dict[str, Any]) -> int:
    return 1 if batch["status"] in ("failed", "expired", "cancelled") else output.OK
