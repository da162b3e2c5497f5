"""Entry point of the agent registry: config, Redis, servicer, then serve until SIGTERM."""

from __future__ import annotations

import grpc

from clawgate.agents.v1 import agent_service_pb2_grpc as pb_grpc
from clawgate.common import logging, runtime
from clawgate.common.auth import Authenticator
from clawgate.common.auth_throttle import FailedAuthLimiter
from clawgate.common.config import Config, load_config_or_exit
from clawgate.common.server import serve
from services.agents import store
from services.agents.servicer import SERVICE_NAME, AgentServicer
from services.agents.tool_catalog import ToolCatalog
from services.agents.validation import ModelCatalog


async def run(config: Config) -> None:
    agents = store.AgentStore(store.connect(config.redis_url), config.cache.namespace)
    tools = ToolCatalog(config.services.dial_target("chat"))  # plugins & tools hook
    servicer = AgentServicer(agents, ModelCatalog.from_config(config), tools)

    def register(server: grpc.aio.Server) -> list[str]:
        pb_grpc.add_AgentServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    await serve(
        name="agents",
        address=config.listen.agents,
        register=register,
        auth=Authenticator.from_env(extra=config.auth.tokens),
        throttle=FailedAuthLimiter.from_config(config),
        on_stop=[agents.close, tools.close],
    )


def main() -> None:
    config = load_config_or_exit()
    logging.setup("agents", config.log_level)
    runtime.run(run(config))
