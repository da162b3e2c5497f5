"""OpenAI's shapes for the Batch API: file and batch objects, input validation per line,
and output/error JSONL lines."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from services.batches.store import MAX_LINES

ENDPOINT = "/v1/chat/completions"
# What a line's `url` may say: OpenAI's path, or the same under this gateway's prefix.
LINE_URLS = frozenset({ENDPOINT, "/api/v1/chat/completions", "/chat/completions"})
COMPLETION_WINDOW = "24h"
WINDOW_S = 24 * 3600


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


def file_object(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta[k] for k in ("id", "object", "bytes", "created_at", "filename", "purpose")} | {
        "status": "processed",
        "expires_at": meta.get("expires_at"),
        "status_details": None,
    }


BATCH_FIELDS = (
    "id",
    "object",
    "endpoint",
    "errors",
    "input_file_id",
    "completion_window",
    "status",
    "output_file_id",
    "error_file_id",
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "request_counts",
    "metadata",
)


def batch_object(record: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """The public batch object (no owner), with live request counts."""
    out = {k: record.get(k) for k in BATCH_FIELDS}
    out["request_counts"] = {
        "total": record["total"],
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
    }
    return out


@dataclass(frozen=True)
class LineError:
    line: int  # 1-based, as OpenAI reports it
    code: str
    message: str
    param: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


def validate_input(content: str) -> tuple[list[str], list[LineError]]:
    """The input file's lines as `{custom_id, body}` JSON, or the errors OpenAI would give
    (the batch then fails without running anything, as OpenAI's does)."""
    lines: list[str] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    rows = [row for row in content.splitlines() if row.strip()]
    if not rows:
        errors.append(LineError(0, "empty_file", "The input file has no requests."))
    if len(rows) > MAX_LINES:
        errors.append(
            LineError(
                0,
                "too_many_requests",
                f"The input file has {len(rows)} requests; "
                f"at most {MAX_LINES} are allowed per batch: split it.",
            )
        )
        return [], errors
    for number, row in enumerate(rows, start=1):
        try:
            item = json.loads(row)
        except ValueError:
            errors.append(LineError(number, "invalid_json_line", "This line is not valid JSON."))
            continue
        if not isinstance(item, dict):
            errors.append(LineError(number, "invalid_request", "Each line must be a JSON object."))
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(
                LineError(
                    number,
                    "missing_required_parameter",
                    "custom_id is required (a non-empty string).",
                    "custom_id",
                )
            )
            continue
        if custom_id in seen:
            errors.append(
                LineError(
                    number,
                    "duplicate_custom_id",
                    f"The custom_id '{custom_id[:64]}' appears more than once.",
                    "custom_id",
                )
            )
            continue
        seen.add(custom_id)
        if item.get("method") != "POST":
            errors.append(LineError(number, "invalid_method", "method must be POST.", "method"))
            continue
        if item.get("url") not in LINE_URLS:
            errors.append(LineError(number, "invalid_url", f"url must be {ENDPOINT}.", "url"))
            continue
        if not isinstance(item.get("body"), dict):
            errors.append(
                LineError(number, "invalid_request", "body must be a JSON object.", "body")
            )
            continue
        lines.append(json.dumps({"custom_id": custom_id, "body": item["body"]}))
    return lines, errors


def result_line(custom_id: str, request_id: str, status: int, body: dict[str, Any]) -> str:
    """A line's answer: a chat.completion (status 200) or an OpenAI error object."""
    return json.dumps(
        {
            "id": new_id("batch_req_"),
            "custom_id": custom_id,
            "response": {"status_code": status, "request_id": request_id, "body": body},
            "error": None,
        }
    )


def not_run_line(custom_id: str, code: str, message: str) -> str:
    """A line the batch ended without running (cancelled, expired)."""
    return json.dumps(
        {
            "id": new_id("batch_req_"),
            "custom_id": custom_id,
            "response": None,
            "error": {"code": code, "message": message},
        }
    )
