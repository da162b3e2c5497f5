"""`model: "agent:<name-or-id>"`: the agent's model, system prompt and default settings.

The agent's config fills only what the request left out (the request's own values win);
its system prompt goes first. Answers echo the model string the client sent
(`agent:<name>`), so clients can match responses to requests as with any model id.
"""

from __future__ import annotations

from clawgate.agents.v1 import agent_service_pb2 as agents_pb
from clawgate.common.errors import invalid
from services.chat.request import ChatRequest

AGENT_PREFIX = "agent:"
_SCALAR_DEFAULTS = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty")


def agent_reference(model: str) -> str | None:
    """The name or id after `agent:`, or None for a plain model id."""
    if not model.startswith(AGENT_PREFIX):
        return None
    return model[len(AGENT_PREFIX) :].strip()


def apply_agent(request: ChatRequest, agent: agents_pb.Agent) -> None:
    """Resolve the model and merge the agent's prompt and defaults into `request.body`."""
    label = agent.name or agent.id
    if not agent.model:
        raise invalid(
            f"agent '{label}' has no model configured; set one with PATCH /api/v1/agents/{{id}}",
            "model",
            "agent_without_model",
        )
    body = request.body
    body["model"] = agent.model
    # ListFields() holds exactly the fields the agent set (proto3 `optional` presence).
    present = {f.name: value for f, value in agent.config.ListFields()}
    for name in _SCALAR_DEFAULTS:
        if name not in body and name in present:
            body[name] = int(present[name]) if name == "max_tokens" else float(present[name])
    if "stop" not in body and agent.config.stop:
        body["stop"] = list(agent.config.stop)
    if agent.system_prompt:
        body["messages"] = [{"role": "system", "content": agent.system_prompt}, *body["messages"]]
    request.agent_id = agent.id
    request.agent_tools = tuple(agent.tools)  # plugins & tools hook
