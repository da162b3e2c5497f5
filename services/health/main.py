"""The health service process."""

from __future__ import annotations

import asyncio

import grpc

from clawgate.common import logging
from clawgate.common.auth import Authenticator
from clawgate.common.config import load_config
from clawgate.common.server import serve
from clawgate.health.v1 import health_service_pb2_grpc as pb_grpc
from services.health.servicer import HealthServicer

SERVICE = "clawgate.health.v1.HealthService"


async def run() -> None:
    config = load_config()
    logging.setup("health", config.log_level)
    auth = Authenticator.from_env()
    servicer = HealthServicer(config, auth)

    def register(server: grpc.aio.Server) -> list[str]:
        pb_grpc.add_HealthServiceServicer_to_server(servicer, server)
        return [SERVICE]

    await serve(
        name="health",
        address=config.listen.health,
        register=register,
        auth=auth,
        # Anyone may ask whether the gateway is up; details need a token (servicer).
        public_methods=[f"/{SERVICE}/GetHealth"],
        on_stop=[servicer.close],
    )


def main() -> None:
    asyncio.run(run())
