"""Per-request limits the pipeline derives from the config: the first-token limit (per
model, else growing with the prompt: issue 10 item 5) and the answer's byte cap."""

from __future__ import annotations

from typing import Any, cast

import aiohttp

from clawgate.common.config import ChatSettings, Config, parse_providers
from services.chat.pipeline import CallOptions, Exchange, Pipeline

PROVIDERS = {
    "p": {
        "baseUrl": "http://127.0.0.1:9/v1",
        "models": [
            {"id": "default:1", "contextWindow": 32000, "maxTokens": 4096},
            {"id": "patient:1", "firstTokenTimeoutSeconds": 600},
        ],
    }
}
SETTINGS = ChatSettings(
    first_token_timeout_s=10, first_token_per_1k_prompt_s=20, max_answer_bytes=100_000
)


async def exchange(model: str, text: str, **fields: Any) -> Exchange:
    config = Config(providers=parse_providers(PROVIDERS), chat=SETTINGS)
    pipeline = Pipeline(config, cast(aiohttp.ClientSession, None))  # never called here
    body = {"model": model, "messages": [{"role": "user", "content": text}], **fields}
    return await pipeline.open(body, stream=False, call=CallOptions())


async def test_the_first_token_limit_grows_with_the_prompt() -> None:
    short = await exchange("default:1", "hi")
    long = await exchange("default:1", "word " * 6000)
    assert long.prompt_estimate > 5000
    assert long.first_token_limit_s(long.model) == 10 + 20 * long.prompt_estimate / 1000
    assert short.first_token_limit_s(short.model) < 11


async def test_a_model_may_set_its_own_first_token_limit() -> None:
    slow = await exchange("patient:1", "word " * 6000)
    assert slow.first_token_limit_s(slow.model) == 600


async def test_the_answer_cap_follows_max_tokens_up_to_the_hard_cap() -> None:
    small = await exchange("default:1", "hi", max_tokens=100)
    assert small.answer_byte_cap() == 100 * SETTINGS.answer_bytes_per_token + 4096
    large = await exchange("default:1", "hi", max_tokens=4000)
    assert large.answer_byte_cap() == SETTINGS.max_answer_bytes
