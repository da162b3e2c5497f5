"""SessionService over gRPC (and REST through Envoy): names, limits, pages.

Authentication, request ids and the rendering of ApiError are done by the shared
interceptor (clawgate.common.server), as for every other service.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from clawgate.common.errors import ApiError, invalid, not_found
from clawgate.common.paging import page_size
from clawgate.common.server import Context
from clawgate.common.tokens import current_principal
from clawgate.sessions.v1 import session_service_pb2 as pb
from clawgate.sessions.v1 import session_service_pb2_grpc as pb_grpc
from services.chat.checks import not_one_of
from services.sessions.store import SessionInfo, SessionStore

log = logging.getLogger("clawgate.sessions")

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["SessionService"].full_name

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_MESSAGES = 2000  # per session
MAX_APPEND = 100  # per call
MAX_TEXT_BYTES = 1 << 20  # content or reasoning of one message
ROLES = ("system", "user", "assistant", "tool")
FINISH_REASONS = ("", "stop", "length", "tool_calls", "cancelled")
CACHE_STATUSES = ("", "HIT", "MISS", "BYPASS")


class SessionServicer(pb_grpc.SessionServiceServicer):
    def __init__(self, store: SessionStore) -> None:
        self._store = store

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        size = page_size(request.page_size)
        page = await self._store.page(_owner(), _decode_token(request.page_token), size)
        return pb.ListSessionsResponse(
            sessions=[_session(info) for info in page.sessions],
            next_page_token=_encode_token(page.last_id) if page.last_id else "",
            total_size=page.total,
        )

    async def GetSession(self, request: pb.GetSessionRequest, context: Context) -> pb.Session:
        session_id = session_id_of(request.name, "name")
        found = await self._store.get(_owner(), session_id)
        if found is None:
            raise session_not_found(session_id)
        info, docs = found
        session = _session(info)
        session.messages.extend(_message(d) for d in docs)
        return session

    async def AppendMessages(
        self, request: pb.AppendMessagesRequest, context: Context
    ) -> pb.AppendMessagesResponse:
        session_id = session_id_of(request.session, "session")
        if not 1 <= len(request.messages) <= MAX_APPEND:
            raise invalid(
                f"messages must hold 1 to {MAX_APPEND} messages, got {len(request.messages)}",
                "messages",
            )
        now = time.time_ns() // 1_000_000
        docs = [_document(m, i, now) for i, m in enumerate(request.messages)]
        appended = await self._store.append(_owner(), session_id, docs, now, MAX_MESSAGES)
        if not appended.ok:
            raise ApiError(
                400,
                f"session {session_id!r} holds {appended.message_count} messages and may "
                f"keep at most {MAX_MESSAGES}; delete it or start a new session",
                param="messages",
                code="session_full",
                grpc_code=grpc.StatusCode.FAILED_PRECONDITION,
            )
        info = SessionInfo(session_id, appended.create_ms, now, appended.message_count)
        return pb.AppendMessagesResponse(session=_session(info))

    async def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: Context
    ) -> empty_pb2.Empty:
        session_id = session_id_of(request.name, "name")
        if not await self._store.delete(_owner(), session_id):
            raise session_not_found(session_id)
        log.info("session deleted", extra={"session": session_id})
        return empty_pb2.Empty()


def _owner() -> str:
    """The calling token's name (the interceptor authenticated it)."""
    principal = current_principal.get()
    if principal is None:  # every session method needs a token: never reached
        raise ApiError(401, "unauthorized: gateway token missing", code="missing_token")
    return principal.name


def session_id_of(name: str, param: str) -> str:
    """The id in `sessions/<id>`."""
    session_id = name.removeprefix("sessions/")
    if not name.startswith("sessions/") or not ID_PATTERN.fullmatch(session_id):
        raise invalid(
            f"{param} must be sessions/<id>, the id being 1 to 64 letters, digits, '.', '_'"
            f" or '-' (starting with a letter or digit); got {name!r}",
            param,
            code="invalid_session_name",
        )
    return session_id


def session_not_found(session_id: str) -> ApiError:
    return not_found(
        f"session {session_id!r} not found; append a message to start it",
        "name",
        code="session_not_found",
    )


def _document(message: pb.Message, index: int, now_ms: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    for name, value, allowed in (
        ("role", message.role, ROLES),
        ("finish_reason", message.finish_reason, FINISH_REASONS),
        ("cache_status", message.cache_status, CACHE_STATUSES),
    ):
        if value not in allowed:
            raise not_one_of(f"{where}.{name}", value, [a for a in allowed if a])
    for name, text in (("content", message.content), ("reasoning", message.reasoning)):
        if len(text.encode()) > MAX_TEXT_BYTES:
            raise invalid(
                f"{where}.{name} is longer than {MAX_TEXT_BYTES} bytes", f"{where}.{name}"
            )
    if len(message.model) > 256:
        raise invalid(f"{where}.model is longer than 256 characters", f"{where}.model")
    doc: dict[str, Any] = {
        "role": message.role,
        "content": message.content,
        "create_ms": now_ms,
    }
    for name in ("reasoning", "model", "finish_reason", "cache_status"):
        if getattr(message, name):
            doc[name] = getattr(message, name)
    return doc


def _message(doc: dict[str, Any]) -> pb.Message:
    message = pb.Message(
        role=doc["role"],
        content=doc.get("content", ""),
        reasoning=doc.get("reasoning", ""),
        model=doc.get("model", ""),
        finish_reason=doc.get("finish_reason", ""),
        cache_status=doc.get("cache_status", ""),
    )
    message.create_time.CopyFrom(_timestamp(int(doc.get("create_ms", 0))))
    return message


def _session(info: SessionInfo) -> pb.Session:
    session = pb.Session(name=f"sessions/{info.id}", message_count=info.message_count)
    session.create_time.CopyFrom(_timestamp(info.create_ms))
    session.update_time.CopyFrom(_timestamp(info.update_ms))
    return session


def _timestamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def _encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str | None:
    if not token:
        return None
    try:
        last_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        last_id = ""
    if not ID_PATTERN.fullmatch(last_id):
        raise invalid(
            "page_token is not valid; pass the next_page_token of a previous response",
            "page_token",
            code="invalid_page_token",
        )
    return last_id
