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
    if args.session:  # the conversation so far, kept server-side (the sessions API)
        body["messages"][-1:-1] = _history(client, args.session)
    if args.json:
        answer = client.call("POST", "/chat/completions", body)
        output.print_json(answer)
        choice = answer["choices"][0]
        _remember(args, client, body, choice["message"].get("content") or "",
                  choice.get("finish_reason"))  # fmt: skip
        return output.OK
    spinner = Spinner(sys.stderr).start()
    printed = False
    parts: list[str] = []
    try:
        frames = client.stream("/chat/completions", {**body, "stream": True})
        for text, is_content in _content(frames, args.reasoning):
            spinner.stop()
            sys.stdout.write(text)
            sys.stdout.flush()
            printed = True
            if is_content:
                parts.append(text)
    finally:
        spinner.stop()
        if printed:  # end the line, also when the stream failed half-way
            sys.stdout.write("\n")
            sys.stdout.flush()
    _remember(args, client, body, "".join(parts), "stop")
    return output.OK


def _session_path(name: str) -> str:
    return "/sessions/" + quote(name, safe="")


def _history(client: Client, session: str) -> list[dict[str, Any]]:
    """The session's earlier turns as chat messages ([] for a new session)."""
    try:
        found = client.call("GET", _session_path(session))
    except GatewayError as err:
        if err.status == 404:
            return []
        raise
    return [
        {"role": m["role"], "content": m.get("content") or ""}
        for m in found.get("messages") or []
        if m.get("role") in ("system", "user", "assistant")
    ]


def _remember(
    args: argparse.Namespace,
    client: Client,
    body: dict[str, Any],
    answer: str,
    finish_reason: str | None,
) -> None:
    """Append this turn (the question and the answer) to the session, if one is named."""
    if not args.session:
        return
    question = body["messages"][-1]
    reply = {"role": "assistant", "content": answer, "model": body["model"],
             "finish_reason": finish_reason or ""}  # fmt: skip
    client.call("POST", _session_path(args.session) + "/messages",
                {"messages": [question, reply]})  # fmt: skip


def _content(frames: Iterator[dict[str, Any]], reasoning: bool) -> Iterator[tuple[str, bool]]:
    """(text, whether it is answer content rather than reasoning) of each delta."""
    for frame in frames:
        for choice in frame.get("choices") or []:
            delta = choice.get("delta") or {}
            if reasoning and delta.get("reasoning"):
                yield delta["reasoning"], False
            if delta.get("content"):
                yield delta["content"], True


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
