"""`model-allowlist`: which models each gateway token may use.

    plugins:
      model-allowlist:
        settings:
          tokens: {ci-bot: [qwen3:8b, agent:helper], 3f9a0c1d2e4b5a67: [qwen3:8b]}
          default: ["*"]

Tokens are named by their name (`clawgate token --list`) or by their token id
(`clawgate token-id`, for unnamed tokens); the token itself never appears in the config.
Entries are model ids or `agent:<name>`; a request passes when its model (after agent
resolution) or the agent it named is listed. Tokens not listed get `default` (no
`default`: everything allowed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clawgate.plugins import Plugin, PluginContext, PluginError


class ModelAllowList(Plugin):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        tokens = settings.get("tokens") or {}
        if not isinstance(tokens, dict):
            raise ValueError("settings.tokens must map token ids to lists of models")
        self.tokens = {str(k): frozenset(map(str, v)) for k, v in tokens.items()}
        default = settings.get("default")
        self.default = frozenset(map(str, default)) if default is not None else None

    async def before_request(self, request: dict[str, Any], ctx: PluginContext) -> None:
        allowed = self.tokens.get(ctx.token_name or "", self.tokens.get(ctx.token_id or ""))
        if allowed is None:
            allowed = self.default
        if allowed is None or "*" in allowed:
            return
        model, named = request["model"], ctx.requested_model
        if model in allowed or (named.startswith("agent:") and named in allowed):
            return
        shown = ", ".join(sorted(allowed)) or "none"
        raise PluginError(
            f"this token may not use the model '{named}'; allowed: {shown}",
            status=403,
            code="model_not_allowed",
            param="model",
        )
