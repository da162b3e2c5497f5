"""The web process's access log: JSON lines like every service, and never a token.

`/?token=…` is how a browser first hands the console its gateway token, so the query
value of `token` is replaced before anything is written.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_SECRET_QUERY = re.compile(r"((?:^|[?&])(?:token|access_token|api_key)=)[^&#]*", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(path_qs: str) -> str:
    """`/chat?session=a&token=cg-x` → `/chat?session=a&token=[redacted]`."""
    return _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, path_qs)


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        extra: dict[str, Any] = {
            "method": request.method,
            "path": redact(request.path_qs),
            "status": response.status,
            "duration_ms": round(time * 1000, 2),
        }
        self.logger.info("request", extra=extra)


def access_logger() -> logging.Logger:
    return logging.getLogger("clawgate.web.access")
