"""The health service process."""

from __future__ import annotations

import grpc

from clawgate.common import logging, runtime
from clawgate.common.auth import Authenticator
from clawgate.common.auth_throttle import FailedAuthLimiter
from clawgate.common.config import Config, load_config_or_exit
from clawgate.common.server import serve
from clawgate.common.services import BY_NAME
from clawgate.health.v1 import health_service_pb2_grpc as pb_grpc
from services.health.servicer import HealthServicer

SERVICE = "clawgate.health.v1.HealthService"


async def run(config: Config) -> None:
    auth = Authenticator.from_env(extra=config.auth.tokens)
    servicer = HealthServicer(config, auth)
    servicer.start()

    def register(server: grpc.aio.Server) -> list[str]:
        pb_grpc.add_HealthServiceServicer_to_server(servicer, server)
        return [SERVICE]

    await serve(
        name="health",
        address=config.listen.health,
        register=register,
        auth=auth,
        throttle=FailedAuthLimiter.from_config(config),
        public_methods=BY_NAME["health"].public_methods,
        on_stop=[servicer.close],
    )


def main() -> None:
    config = load_config_or_exit()
    logging.setup("health", config.log_level)
    runtime.run(run(config))
