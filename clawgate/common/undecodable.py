"""Requests whose bytes protobuf cannot decode, answered with 400 after authentication.

Envoy's transcoder copies percent-decoded path and query text into string fields without
checking it, so `/api/v1/agents/%ff` reaches a service as invalid UTF-8. grpc would fail
such a call with an empty INTERNAL before any handler runs (so even without a token); the
gateway interceptor decodes leniently instead, checks the token, then answers 400.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from clawgate.common.errors import ApiError, invalid


class Undecodable:
    """Stands for a request message that could not be decoded."""


UNDECODABLE = Undecodable()

Deserializer = Callable[[bytes], Any]


def lenient(deserializer: Deserializer | None) -> Deserializer | None:
    """`deserializer`, returning UNDECODABLE instead of raising on bad bytes."""
    if deserializer is None:
        return None
    strict = deserializer

    def decode(data: bytes) -> Any:
        try:
            return strict(data)
        except DecodeError:
            return UNDECODABLE

    return decode


def undecodable_error() -> ApiError:
    return invalid(
        "The request contains text that is not valid UTF-8 (for example a percent-escape "
        "such as %ff in the path or query string). Percent-encode the UTF-8 bytes of the text.",
        code="invalid_encoding",
    )
