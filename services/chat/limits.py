"""Check a request against its model's configured limits (maxTokens, contextWindow).

Runs after agent resolution, before the cache and before any upstream call, so a prompt
that cannot fit is refused with advice instead of being truncated or failing on the GPU.
"""

from __future__ import annotations

from clawgate.common.config import ModelSpec
from clawgate.common.errors import invalid
from services.chat.request import ChatRequest
from services.chat.tokens import prompt_tokens


def apply_model_limits(request: ChatRequest, model: ModelSpec) -> int:
    """Validate max_tokens and the context window; returns the prompt estimate.

    When the client gives no max_tokens, the model's maxTokens (or what is left of the
    context window, if less) is sent, so generation is always bounded.
    """
    body = request.body
    estimate = prompt_tokens(body["messages"], body.get("tools", ()))
    requested = body.get("max_tokens")
    if requested is not None and requested > model.max_tokens:
        raise invalid(
            f"Invalid 'max_tokens': integer above maximum value. Expected a value <= "
            f"{model.max_tokens} for model '{model.id}', but got {requested} instead.",
            "max_tokens",
            "integer_above_max_value",
        )
    room = model.context_window - estimate
    if room < 1 or (requested is not None and requested > room):
        asked = (
            f"you requested about {estimate + requested} tokens (about {estimate} estimated "
            f"in the messages, {requested} in the completion)"
            if requested is not None
            else f"your messages are about {estimate} tokens (estimated)"
        )
        raise invalid(
            f"This model's maximum context length is {model.context_window} tokens. "
            f"However, {asked}. Lower max_tokens, shorten the messages, or use a model with "
            "a larger context window.",
            "messages",
            "context_length_exceeded",
        )
    if requested is None:
        body["max_tokens"] = min(model.max_tokens, room)
    return estimate
