"""The chat service process: config, the pooled HTTP session, cache, agents, then serve."""

from __future__ import annotations

import asyncio

import aiohttp
import grpc

from clawgate.chat.v1 import chat_service_pb2_grpc as pb_grpc
from clawgate.common import logging as clawgate_logging
from clawgate.common.auth import Authenticator
from clawgate.common.config import ChatSettings, Config, load_config
from clawgate.common.server import serve
from services.chat.agent_resolver import AgentResolver
from services.chat.cache import PromptCache
from services.chat.models import ModelCatalogue
from services.chat.pipeline import Pipeline
from services.chat.servicer import SERVICE_NAME, ChatServicer

# Long answers stream one line per token; a tool call or error body can be a long line.
READ_BUFFER_BYTES = 1 << 20


def upstream_session(settings: ChatSettings) -> aiohttp.ClientSession:
    """One pooled session per process. Only connecting is time-limited here: the pipeline
    enforces the first-token limit and the request deadline itself."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout_s),
        connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
        read_bufsize=READ_BUFFER_BYTES,
        trust_env=False,
    )


async def run(config: Config) -> None:
    session = upstream_session(config.chat)
    cache = PromptCache.from_url(config.redis_url, config.cache)
    resolver = AgentResolver(config.services.agents)
    pipeline = Pipeline(config, session, cache=cache, resolver=resolver)
    catalogue = ModelCatalogue(config, session, resolver)
    servicer = ChatServicer(pipeline, catalogue, cache)

    def register(server: grpc.aio.Server) -> list[str]:
        pb_grpc.add_ChatServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    async def close() -> None:
        await catalogue.close()
        await resolver.close()
        await cache.close()
        await session.close()

    await serve(
        name="chat",
        address=config.listen.chat,
        register=register,
        auth=Authenticator.from_env(),
        on_stop=[close],
    )


def main() -> None:
    config = load_config()
    clawgate_logging.setup("chat", config.log_level)
    asyncio.run(run(config))
