"""The client commands of the CLI: chat, models, agents. Each returns an exit code."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from clawgate.client import output
from clawgate.client.api import Client, GatewayError
from clawgate.client.spinner import Spinner

# The sessions API (clawgate.sessions.v1) is not there yet: the chat service ignores this
# header today; once sessions exist the gateway can keep the conversation server-side.
SESSION_HEADER = "x-session-id"


def _models(client: Client) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = client.call("GET", "/models").get("data", [])
    return data


def default_model(client: Client) -> str:
    """`$CLAWGATE_MODEL`, else the first model a live worker has pulled."""
    if os.environ.get("CLAWGATE_MODEL"):
        return os.environ["CLAWGATE_MODEL"]
    models = [m for m in _models(client) if not m["id"].startswith("agent:")]
    for model in sorted(models, key=lambda m: not m.get("available")):
        return str(model["id"])
    raise GatewayError(404, "the gateway has no models configured", "model_not_found")


def _chat_request(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    prompt = " ".join(args.message).strip()
    if not prompt or prompt == "-":
        prompt = sys.stdin.read().strip()
    if not prompt:
        raise GatewayError(400, "nothing to send: give a message (or pipe one)", "usage")
    model = f"agent:{args.agent}" if args.agent else (args.model or default_model(client))
    messages = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": prompt})
    body: dict[str, Any] = {"model": model, "messages": messages}
    if args.temperature is not None:
        body["temperature"] = args.temperature
    if args.max_tokens is not None:
        body["max_tokens"] = args.max_tokens
    return body


def chat(args: argparse.Namespace, client: Client) -> int:
    body = _chat_request(args, client)
    headers = {SESSION_HEADER: args.session} if args.session else {}
    if args.json:
        output.print_json(client.call("POST", "/chat/completions", body, headers))
        return output.OK
    spinner = Spinner(sys.stderr).start()
    printed = False
    try:
        frames = client.stream("/chat/completions", {**body, "stream": True}, headers)
        for text in _content(frames, args.reasoning):
            spinner.stop()
            sys.stdout.write(text)
            sys.stdout.flush()
            printed = True
    finally:
        spinner.stop()
        if printed:  # end the line, also when the stream failed half-way
            sys.stdout.write("\n")
            sys.stdout.flush()
    return output.OK


def _content(frames: Iterator[dict[str, Any]], reasoning: bool) -> Iterator[str]:
    for frame in frames:
        for choice in frame.get("choices") or []:
            delta = choice.get("delta") or {}
            if reasoning and delta.get("reasoning"):
                yield delta["reasoning"]
            if delta.get("content"):
                yield delta["content"]


def models(args: argparse.Namespace, client: Client) -> int:
    data = _models(client)
    if args.json:
        output.print_json({"object": "list", "data": data})
    elif args.quiet:
        print("\n".join(m["id"] for m in data))
    else:
        rows = [(m["id"], m.get("provider") or m.get("owned_by", ""),
                 "yes" if m.get("available") else "no", m.get("context_window") or "",
                 m.get("name", "")) for m in data]  # fmt: skip
        output.table(("ID", "PROVIDER", "AVAILABLE", "CONTEXT", "NAME"), rows)
    return output.OK


def _all_agents(client: Client) -> list[dict[str, Any]]:
    agents: list[dict[str, Any]] = []
    token = ""
    while True:
        page = client.call("GET", "/agents", query={"page_size": "200", "page_token": token})
        agents += page.get("agents", [])
        token = page.get("next_page_token", "")
        if not token:
            return agents


def agents_list(args: argparse.Namespace, client: Client) -> int:
    agents = _all_agents(client)
    if args.json:
        output.print_json({"agents": agents})
    elif args.quiet:
        print("\n".join(a["name"] for a in agents))
    else:
        rows = [(a["id"], a.get("name", ""), a.get("model", ""), a.get("description", ""))
                for a in agents]  # fmt: skip
        output.table(("ID", "NAME", "MODEL", "DESCRIPTION"), rows)
    return output.OK


def _show(args: argparse.Namespace, agent: dict[str, Any]) -> None:
    if args.json:
        output.print_json(agent)
    else:
        output.fields(agent)


def agents_create(args: argparse.Namespace, client: Client) -> int:
    given = {"temperature": args.temperature, "max_tokens": args.max_tokens, "top_p": args.top_p}
    config = {key: value for key, value in given.items() if value is not None}
    agent: dict[str, Any] = {"name": args.name, "model": args.model}
    if args.description:
        agent["description"] = args.description
    if args.system_prompt:
        agent["system_prompt"] = args.system_prompt
    if config:
        agent["config"] = config
    # One key for every attempt: a retried create returns the agent the first one made.
    created = client.call("POST", "/agents", agent, {"Idempotency-Key": uuid.uuid4().hex})
    _show(args, created)
    return output.OK


def agents_get(args: argparse.Namespace, client: Client) -> int:
    _show(args, client.call("GET", f"/agents/{_segment(args.agent)}"))
    return output.OK


def agents_delete(args: argparse.Namespace, client: Client) -> int:
    client.call("DELETE", f"/agents/{_segment(args.agent)}")
    if args.json:
        output.print_json({"deleted": args.agent})
    else:
        print(f"deleted {args.agent}")
    return output.OK


def _segment(value: str) -> str:
    return quote(value, safe="")
