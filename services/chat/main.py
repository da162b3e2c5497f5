"""The chat service process: config, the pooled HTTP session, cache, agents and the session
store (SessionService), the
batch runner (BatchService), then serve."""

from __future__ import annotations

import aiohttp
import grpc

from clawgate.batches.v1 import batch_service_pb2_grpc as batches_grpc
from clawgate.chat.v1 import chat_service_pb2_grpc as pb_grpc
from clawgate.common import logging as clawgate_logging
from clawgate.common import runtime
from clawgate.common.auth import Authenticator
from clawgate.common.auth_throttle import FailedAuthLimiter
from clawgate.common.config import ChatSettings, Config, load_config_or_exit
from clawgate.common.redis_store import connect
from clawgate.common.server import serve
from clawgate.sessions.v1 import session_service_pb2_grpc as sessions_grpc
from services.batches.runner import BatchRunner
from services.batches.servicer import SERVICE_NAME as BATCH_SERVICE
from services.batches.servicer import BatchServicer
from services.batches.store import BatchStore
from services.chat import metrics as chat_metrics
from services.chat.agent_resolver import AgentResolver
from services.chat.cache import PromptCache
from services.chat.extensions import Extensions
from services.chat.models import ModelCatalogue
from services.chat.pipeline import Pipeline
from services.chat.rate_limit import RateLimiter
from services.chat.servicer import SERVICE_NAME, ChatServicer
from services.sessions import servicer as sessions
from services.sessions.store import SessionStore

# Long answers stream one line per token; a tool call or error body can be a long line.
READ_BUFFER_BYTES = 1 << 20


def upstream_session(settings: ChatSettings) -> aiohttp.ClientSession:
    """One pooled session per process. Only connecting is time-limited here: the pipeline
    enforces the first-token limit and the request deadline itself."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout_s),
        connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
        # Never keep an upstream's cookies: they would go out with other tenants' requests.
        cookie_jar=aiohttp.DummyCookieJar(),
        read_bufsize=READ_BUFFER_BYTES,
        trust_env=False,
    )


async def run(config: Config) -> None:
    session = upstream_session(config.chat)
    cache = PromptCache.from_url(config.redis_url, config.cache)
    resolver = AgentResolver(config.services.agents)
    extensions = Extensions.from_config(config, session)  # plugins & tools hook
    pipeline = Pipeline(config, session, cache=cache, resolver=resolver, extensions=extensions)
    catalogue = ModelCatalogue(config, session, resolver)
    limits = RateLimiter.from_config(config)
    servicer = ChatServicer(pipeline, catalogue, cache, limits, extensions)
    chat_metrics.register(pipeline.pool, cache)
    session_store = SessionStore(connect(config.redis_url), config.cache.namespace)
    batch_store = BatchStore(connect(config.redis_url), config.cache.namespace)
    runner = BatchRunner(batch_store, pipeline)
    runner.start()  # resumes the batches a previous run left unfinished

    def register(server: grpc.aio.Server) -> list[str]:
        pb_grpc.add_ChatServiceServicer_to_server(servicer, server)
        sessions_grpc.add_SessionServiceServicer_to_server(
            sessions.SessionServicer(session_store), server
        )
        batches_grpc.add_BatchServiceServicer_to_server(BatchServicer(batch_store, runner), server)
        return [SERVICE_NAME, sessions.SERVICE_NAME, BATCH_SERVICE]

    async def close() -> None:
        await runner.close()
        await batch_store.close()
        await extensions.close()
        await catalogue.close()
        await resolver.close()
        await cache.close()
        await limits.close()
        await session_store.close()
        await session.close()

    await serve(
        name="chat",
        address=config.listen.chat,
        register=register,
        auth=Authenticator.from_env(extra=config.auth.tokens),
        throttle=FailedAuthLimiter.from_config(config),
        on_stop=[close],
    )


def main() -> None:
    config = load_config_or_exit()
    clawgate_logging.setup("chat", config.log_level)
    runtime.run(run(config))
