"""AgentService over gRPC (and REST through Envoy): validation, preconditions, idempotency.

Authentication, scopes, request ids and the rendering of ApiError are done by the shared
interceptor (clawgate.common.server); this module raises ApiError for client mistakes.

Tenancy: an agent belongs to the token (name) that created it. Only its owner and admins
see it, unless it is `shared`, then every token may read and use it; only the owner or an
admin may change or delete it. An agent a caller may not see is "not found" to it.
"""

from __future__ import annotations

import logging
import re

import grpc
from google.protobuf import empty_pb2

from clawgate.agents.v1 import agent_service_pb2 as pb
from clawgate.agents.v1 import agent_service_pb2_grpc as pb_grpc
from clawgate.common.errors import ApiError, invalid, not_found, quote
from clawgate.common.server import Context, metadata_value
from clawgate.common.tokens import Principal, current_principal
from services.agents import masks, pagination
from services.agents.records import AgentRecord, now_ms
from services.agents.store import AgentStore, IdempotencyClaim, Outcome
from services.agents.tool_catalog import ToolCatalog
from services.agents.validation import ModelCatalog, normalize_name, validate

log = logging.getLogger("clawgate.agents")

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["AgentService"].full_name

# Without a client etag, an update re-reads and retries when another write slips in.
MAX_UPDATE_ATTEMPTS = 5
IDEMPOTENCY_KEY_MAX = 255
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]+")


class Precondition:
    """The etags a write may replace: from `If-Match` and/or the request's etag field."""

    def __init__(self, header: str | None, field_value: str) -> None:
        header_tags = _parse_if_match(header) if header else None
        if header_tags is not None and field_value and field_value not in header_tags | {"*"}:
            raise invalid("the If-Match header and the etag field disagree", "etag")
        self.tags = header_tags or ({field_value} if field_value else None)

    @property
    def strict(self) -> bool:
        """True when the client named specific etags (not none, not `*`)."""
        return self.tags is not None and "*" not in self.tags

    def check(self, current_etag: str) -> None:
        if self.strict and self.tags is not None and current_etag not in self.tags:
            raise stale_etag()


class AgentServicer(pb_grpc.AgentServiceServicer):
    def __init__(
        self, store: AgentStore, catalog: ModelCatalog, tools: ToolCatalog | None = None
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._tools = tools  # plugins & tools hook

    async def _check_tools(self, agent: pb.Agent, context: Context) -> None:
        """Tool names must exist on the chat service (plugins & tools hook)."""
        if not agent.tools:
            return
        if self._tools is None:
            raise ApiError(503, "tools cannot be checked here", code="tools_unavailable")
        metadata = [(k, str(v)) for k, v in context.invocation_metadata() or ()]
        await self._tools.check(list(agent.tools), metadata)

    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: Context
    ) -> pb.ListAgentsResponse:
        size = pagination.page_size(request.page_size)
        cursor = pagination.decode_token(request.page_token)
        caller = _caller()
        page = await self._store.page(cursor, size, None if caller.is_admin else caller.name)
        return pb.ListAgentsResponse(
            agents=[r.to_proto() for r in page.records],
            next_page_token=pagination.encode_token(page.next_cursor) if page.next_cursor else "",
            total_size=page.total,
        )

    async def GetAgent(self, request: pb.GetAgentRequest, context: Context) -> pb.Agent:
        return (await self._find(request.id)).to_proto()

    async def CreateAgent(self, request: pb.CreateAgentRequest, context: Context) -> pb.Agent:
        agent = pb.Agent()
        agent.CopyFrom(request.agent)
        agent.name = normalize_name(agent.name)
        validate(agent, self._catalog)
        await self._check_tools(agent, context)  # plugins & tools hook
        record = AgentRecord.create(agent, now_ms(), owner=_caller().name)
        key = _idempotency_key(metadata_value(context, "idempotency-key"), request.request_id)
        claim = IdempotencyClaim(key, record.fingerprint()) if key else None
        created = await self._store.create(record, claim)
        if created.outcome is Outcome.NAME_TAKEN:
            raise name_taken(agent.name)
        assert created.record is not None
        if created.replayed_fingerprint is not None:
            if created.replayed_fingerprint != record.fingerprint():
                raise ApiError(
                    422,
                    "this Idempotency-Key was already used with different parameters; "
                    "use a new key for a different agent",
                    param="Idempotency-Key",
                    code="idempotency_key_reused",
                )
            log.info("create replayed", extra={"agent_id": created.record.id})
        else:
            log.info("agent created", extra={"agent_id": record.id, "agent_name": record.name})
        return created.record.to_proto()

    async def UpdateAgent(self, request: pb.UpdateAgentRequest, context: Context) -> pb.Agent:
        patch = pb.Agent()
        patch.CopyFrom(request.agent)
        if patch.HasField("name"):
            patch.name = normalize_name(patch.name)
        paths = masks.changed_paths(patch, list(request.update_mask.paths))
        if not paths:
            raise invalid(
                "nothing to update: give the fields to change in the body "
                "(unknown field names are dropped) or name them in update_mask",
                "update_mask",
            )
        precondition = Precondition(metadata_value(context, "if-match"), patch.etag)
        target = patch.id
        for _ in range(MAX_UPDATE_ATTEMPTS):
            current = await self._find(target, param="agent.id", change=True)
            target = current.id  # a rename by someone else must not lose the agent
            precondition.check(current.etag)
            merged = masks.apply(current.to_proto(), patch, paths)
            validate(merged, self._catalog, paths)
            if "tools" in paths:  # plugins & tools hook
                await self._check_tools(merged, context)
            revised = current.revise(merged, now_ms())
            outcome = await self._store.replace(revised, expected_etag=current.etag)
            if outcome is Outcome.OK:
                log.info("agent updated", extra={"agent_id": revised.id, "fields": paths})
                return revised.to_proto()
            if outcome is Outcome.NAME_TAKEN:
                raise name_taken(revised.name)
            if outcome is Outcome.ETAG_MISMATCH and precondition.strict:
                raise stale_etag()
            # Deleted or changed since we read it: read again.
        raise ApiError(
            409,
            "the agent kept changing while this update ran; retry",
            code="concurrent_update",
            grpc_code=grpc.StatusCode.ABORTED,
        )

    async def DeleteAgent(
        self, request: pb.DeleteAgentRequest, context: Context
    ) -> empty_pb2.Empty:
        precondition = Precondition(metadata_value(context, "if-match"), request.etag)
        current = await self._find(request.id, change=True)
        precondition.check(current.etag)
        expected = current.etag if precondition.strict else None
        outcome = await self._store.delete(current, expected)
        if outcome is Outcome.ETAG_MISMATCH:
            raise stale_etag()
        if outcome is Outcome.NOT_FOUND:
            raise agent_not_found(request.id, "id")
        log.info("agent deleted", extra={"agent_id": current.id})
        return empty_pb2.Empty()

    async def _find(self, id_or_name: str, param: str = "id", change: bool = False) -> AgentRecord:
        """The agent, if the caller may see it (and with `change`, may change it)."""
        if not id_or_name:
            raise invalid(f"{param} is required (an agent id or name)", param)
        record = await self._store.get(normalize_name(id_or_name))
        caller = _caller()
        owns = caller.is_admin or (record is not None and record.owner == caller.name)
        if record is None or not (owns or record.shared):
            raise agent_not_found(id_or_name, param)
        if change and not owns:
            raise ApiError(
                403,
                f"agent {id_or_name!r} is shared by its owner: you may use it, but only its "
                "owner or an admin may change or delete it",
                param=param,
                code="permission_denied",
            )
        return record


def _caller() -> Principal:
    """The authenticated caller (the interceptor always sets one for this service)."""
    principal = current_principal.get()
    if principal is None:
        raise ApiError(401, "unauthorized: gateway token missing", code="missing_token")
    return principal


def agent_not_found(id_or_name: str, param: str) -> ApiError:
    return not_found(f"agent {quote(id_or_name)} not found", param, code="agent_not_found")


def name_taken(name: str) -> ApiError:
    return ApiError(
        409, f"an agent named {quote(name)} already exists", param="name", code="agent_name_taken"
    )


def stale_etag() -> ApiError:
    return ApiError(
        412,
        "etag does not match the agent's current etag: it changed since you read it; "
        "GET it again and reapply your change",
        param="etag",
        code="etag_mismatch",
    )


def _parse_if_match(header: str) -> set[str]:
    tags = set()
    for part in header.split(","):
        tag = part.strip().removeprefix("W/").strip('"')
        if tag:
            tags.add(tag)
    if not tags:
        raise invalid("If-Match header is empty", "etag")
    return tags


def _idempotency_key(header: str | None, field_value: str) -> str | None:
    if header and field_value and header != field_value:
        raise invalid("the Idempotency-Key header and request_id disagree", "request_id")
    key = header or field_value
    if not key:
        return None
    if len(key) > IDEMPOTENCY_KEY_MAX or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise invalid(
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters",
            "Idempotency-Key",
        )
    return key
