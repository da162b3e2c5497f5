"""The `clawgate` command: run the gateway (onboard, token, envoy-config) and talk to it
(chat, models, agents) with the URL and token that `onboard` saved."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from clawgate.common.config import (
    DEFAULT_CHAT_PROCESSES,
    MAX_CHAT_PROCESSES,
    ConfigError,
    EdgeLimits,
    load_config,
)

Command = Callable[..., int]


def _client_options(parser: argparse.ArgumentParser, listing: bool = False) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    if listing:
        parser.add_argument("-q", "--quiet", action="store_true", help="print ids/names only")


def build_parser() -> argparse.ArgumentParser:
    from clawgate.client import batch as batches
    from clawgate.client import commands

    parser = argparse.ArgumentParser(prog="clawgate", description=__doc__)
    parser.add_argument("--config", help="config file (default: $CLAWGATE_CONFIG, ./clawgate.yaml)")
    parser.add_argument("--url", help="gateway URL (default: $CLAWGATE_URL, then onboard's)")
    parser.add_argument("--token", help="gateway token (default: $CLAWGATE_TOKEN, then onboard's)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument(
        "--retries", type=int, default=2, help="retries of 429/5xx answers (default 2)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("onboard", help="start the whole gateway (Redis, services, Envoy)")
    up.add_argument(
        "--demo",
        action="store_true",
        help="run the built-in ollama stand-in instead of a real ollama",
    )
    up.add_argument(
        "--workers",
        metavar="N|auto",
        help="chat processes to run, each on its own port behind Envoy; auto = one per CPU"
        f" (at most {MAX_CHAT_PROCESSES}; default: the config's chat.processes, else"
        f" {DEFAULT_CHAT_PROCESSES})",
    )
    token = sub.add_parser("token", help="print the gateway token, or manage named tokens")
    token.add_argument("--create", metavar="NAME", help="add a named token; prints it")
    token.add_argument(
        "--scopes",
        default="chat",
        help="with --create: comma-separated, from admin, chat, agents:read, agents:write, "
        "cache:read, cache:purge (default: chat)",
    )
    token.add_argument("--list", action="store_true", help="names and scopes (never tokens)")
    token.add_argument("--revoke", metavar="NAME", help="remove the named token")
    status = sub.add_parser("status", help="the health report as a table (exit 0/1/2)")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.add_argument("--watch", type=float, metavar="SECONDS", help="refresh every N s")
    sub.add_parser("token-id", help="print the id of the token read from stdin (for plugins)")
    envoy = sub.add_parser("envoy-config", help="print Envoy's config for docker-compose")
    envoy.add_argument("--descriptor", default="/etc/envoy/clawgate.pb")
    envoy.add_argument("--lua", default="/etc/envoy/openai_errors.lua")
    envoy.add_argument("--openapi", default="/etc/envoy/openapi.json")

    compose = sub.add_parser("compose-config", help="print docker-compose.yml (from the registry)")
    compose.add_argument("--ci", action="store_true", help="the CI override with the stand-in")
    sub.add_parser("k8s-manifests", help="print the Kubernetes manifests (deploy/k8s)")

    chat = sub.add_parser("chat", help="send a message and stream the answer")
    chat.add_argument("message", nargs="*", help="the message (none or `-`: read stdin)")
    who = chat.add_mutually_exclusive_group()
    who.add_argument("--model", help="model id (default: $CLAWGATE_MODEL, else the first one)")
    who.add_argument("--agent", help="chat with this agent (its model, prompt and defaults)")
    chat.add_argument(
        "--session",
        help="conversation name: earlier turns come from the gateway's sessions API and this "
        "turn is added to it (the console's /chat?session=NAME shows the same history)",
    )
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--reasoning", action="store_true", help="also print the model's thinking")
    _client_options(chat)
    chat.set_defaults(run=commands.chat)

    models = sub.add_parser("models", help="list the models and agents")
    _client_options(models, listing=True)
    models.set_defaults(run=commands.models)

    agents = sub.add_parser("agents", help="manage agents").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = agents.add_parser("list", help="list agents")
    _client_options(listing, listing=True)
    listing.set_defaults(run=commands.agents_list)
    create = agents.add_parser("create", help="create an agent")
    create.add_argument("name")
    create.add_argument("--model", required=True, help="a configured model id")
    create.add_argument("--description")
    create.add_argument("--system-prompt")
    create.add_argument("--temperature", type=float)
    create.add_argument("--max-tokens", type=int)
    create.add_argument("--top-p", type=float)
    _client_options(create)
    create.set_defaults(run=commands.agents_create)
    for action, helptext, run in (
        ("get", "show an agent", commands.agents_get),
        ("delete", "delete an agent", commands.agents_delete),
    ):
        one = agents.add_parser(action, help=helptext)
        one.add_argument("agent", help="agent id or name")
        _client_options(one)
        one.set_defaults(run=run)

    batch = sub.add_parser("batch", help="run a JSONL file of chat requests as a batch")
    batch_actions = batch.add_subparsers(dest="action", required=True, metavar="ACTION")
    submit = batch_actions.add_parser("submit", help="upload a JSONL file and create a batch")
    submit.add_argument("file", help="JSONL: one {custom_id, method, url, body} per line")
    submit.add_argument("--wait", action="store_true", help="follow it and download the output")
    submit.add_argument("--output", help="where --wait writes the output (FILE.output.jsonl)")
    submit.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    _client_options(submit)
    submit.set_defaults(run=batches.submit)

    completion = sub.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh"])
    return parser


def _run_client(args: argparse.Namespace) -> int:
    from clawgate.client import output
    from clawgate.client.api import Client, GatewayError, Unreachable
    from clawgate.client.connection import Connection, NoToken
    from clawgate.common.config import ConfigError, load_config

    try:
        connection = Connection.resolve(load_config(args.config), args.url, args.token)
        client = Client(connection, timeout=args.timeout, retries=args.retries)
        code: int = args.run(args, client)
        return code
    except (GatewayError, Unreachable, NoToken, ConfigError) as err:
        return output.report(err, getattr(args, "json", False))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(parser, args)
    except ConfigError as err:
        # One line naming the setting; a traceback would bury it.
        print(f"config error: {err}", file=sys.stderr)
        return 2


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "status":
        from clawgate import status as status_view

        return status_view.run(args.config, as_json=args.json, watch=args.watch)
    if hasattr(args, "run"):
        return _run_client(args)
    if args.command == "completion":
        from clawgate.client.completion import SHELLS

        sys.stdout.write(SHELLS[args.shell](parser))
        return 0

    if args.command in ("compose-config", "k8s-manifests"):
        from clawgate.deploy import cli as deploy_cli

        return deploy_cli.run(args)
    from clawgate.launcher import onboard

    if args.command == "onboard":
        return onboard.onboard(demo=args.demo, config_path=args.config, workers=args.workers)
    if args.command == "token":
        return _token_command(args)
    if args.command == "token-id":  # the id plugins (model-allowlist) and logs use
        from clawgate.common.auth import Authenticator

        print(Authenticator(()).token_id(sys.stdin.readline().strip()))
        return 0
    from clawgate.common.services import SERVICES
    from clawgate.launcher import envoy_config

    # In compose every service is reached by its name, on its default port.
    addrs = {s.name: f"{s.name}:{s.default_port}" for s in SERVICES}
    ports = envoy_config.EnvoyPorts("0.0.0.0", 8000, 9901, addrs)
    # Defaults unless a config file is named, so the committed compose copy is reproducible.
    limits = load_config(args.config).gateway.limits if args.config else EdgeLimits()
    config = envoy_config.render(
        ports,
        limits,
        descriptor=Path(args.descriptor),
        lua=Path(args.lua),
        openapi=Path(args.openapi),
    )
    sys.stdout.write("# Generated by `clawgate envoy-config`; do not edit by hand.\n")
    sys.stdout.write(yaml.safe_dump(config, sort_keys=False))
    return 0


def _token_command(args: argparse.Namespace) -> int:
    from clawgate.client.connection import token_path
    from clawgate.common.config import load_config
    from clawgate.launcher import onboard, token_admin

    if not (args.create or args.list or args.revoke):
        return onboard.print_token(args.config)
    path = token_path(load_config(args.config))
    if args.create:
        return token_admin.create(path, args.create, args.scopes)
    if args.revoke:
        return token_admin.revoke(path, args.revoke)
    return token_admin.list_tokens(path)


if __name__ == "__main__":
    sys.exit(main())
