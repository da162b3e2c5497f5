"""The one table of which scope each gRPC method needs (REST paths map onto these).

A method missing from this table needs `admin`: a new method is closed until someone
decides who may call it. Public methods (health probes) are declared by their service.
"""

from __future__ import annotations

from collections.abc import Mapping

from clawgate.common.tokens import (
    ADMIN,
    AGENTS_READ,
    AGENTS_WRITE,
    CACHE_PURGE,
    CACHE_READ,
    CHAT,
    METRICS_READ,
)

_CHAT = "/clawgate.chat.v1.ChatService/"
_AGENTS = "/clawgate.agents.v1.AgentService/"
_HEALTH = "/clawgate.health.v1.HealthService/"
_SESSIONS = "/clawgate.sessions.v1.SessionService/"
_BATCHES = "/clawgate.batches.v1.BatchService/"

METHOD_SCOPES: Mapping[str, str] = {
    _CHAT + "CreateChatCompletionHttp": CHAT,
    _CHAT + "CreateChatCompletion": CHAT,
    _CHAT + "StreamChatCompletion": CHAT,
    _CHAT + "ListModels": CHAT,
    _CHAT + "GetModel": CHAT,
    _CHAT + "ListTools": CHAT,
    _CHAT + "GetCacheStats": CACHE_READ,
    _CHAT + "PurgeCache": CACHE_PURGE,
    _AGENTS + "ListAgents": AGENTS_READ,
    _AGENTS + "GetAgent": AGENTS_READ,
    _AGENTS + "CreateAgent": AGENTS_WRITE,
    _AGENTS + "UpdateAgent": AGENTS_WRITE,
    _AGENTS + "DeleteAgent": AGENTS_WRITE,
    _HEALTH + "GetMetrics": METRICS_READ,
    # Conversation history is part of chatting; each token sees only its own sessions.
    _SESSIONS + "ListSessions": CHAT,
    _SESSIONS + "GetSession": CHAT,
    _SESSIONS + "AppendMessages": CHAT,
    _SESSIONS + "DeleteSession": CHAT,
    # Batches are chat requests run later; each token sees only its own files and batches.
    **{
        _BATCHES + m: CHAT
        for m in (
            "CreateFile",
            "GetFile",
            "GetFileContent",
            "DeleteFile",
            "CreateBatch",
            "GetBatch",
            "ListBatches",
            "CancelBatch",
            "StreamBatchChatCompletions",
        )
    },
    # Reflection describes the API to any caller with a token (grpcurl, Postman).
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": CHAT,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": CHAT,
}


def scope_for(method: str) -> str:
    return METHOD_SCOPES.get(method, ADMIN)
