"""The aiohttp application: ollama's routes, gin's error pages and Host check, control API."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import control, native_format, openai_format
from .chat_handler import JSON_GIN, JSON_V1, drop_connection, handle_native, handle_openai
from .models import find_model, with_default_tag
from .settings import Settings
from .state import STATE, StandinState
from .wire import go_json_bytes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHAT_PATHS = frozenset({"/api/chat", "/v1/chat/completions"})


def _plain(status: int, text: str) -> web.Response:
    # gin writes these with exactly "text/plain", no charset.
    return web.Response(status=status, body=text.encode(), headers={"Content-Type": "text/plain"})


@web.middleware
async def gin_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown path -> 404 `404 page not found`; wrong method -> 405 (HandleMethodNotAllowed)."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        return _plain(405, "405 method not allowed")
    except web.HTTPNotFound:
        return _plain(404, "404 page not found")


def _bound_to_loopback(request: web.Request) -> bool:
    transport = request.transport
    sockname: object = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(sockname, tuple) or not sockname:
        return False
    try:
        return ipaddress.ip_address(str(sockname[0])).is_loopback
    except ValueError:
        return False


def _allowed_host(host_header: str) -> bool:
    """allowedHostsMiddleware: loopback/private IPs, localhost, *.localhost|local|internal."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in ("", "localhost", socket.gethostname().lower()):
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host.endswith((".localhost", ".local", ".internal"))
    return addr.is_loopback or addr.is_private or addr.is_unspecified


@web.middleware
async def ollama_guards(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(control.PREFIX + "/"):
        return await handler(request)
    settings = request.app[STATE].settings
    # A server that is down for good answers nothing at all; a counted "down" only hits
    # chat requests (handled there, so the request is logged).
    if settings.fail == "down" and settings.fail_times is None and request.path not in CHAT_PATHS:
        return drop_connection(request)
    if _bound_to_loopback(request) and not _allowed_host(request.host):
        return web.Response(status=403)
    return await handler(request)


async def root(request: web.Request) -> web.Response:
    return web.Response(text="Ollama is running", content_type="text/plain", charset="utf-8")


async def version(request: web.Request) -> web.Response:
    return _gin_json({"version": request.app[STATE].settings.version})


async def tags(request: web.Request) -> web.Response:
    settings = request.app[STATE].settings
    return _gin_json(native_format.tags(settings.models, settings.thinking_prefixes))


async def ps(request: web.Request) -> web.Response:
    state = request.app[STATE]
    entries = []
    for _, loaded in state.runners.snapshot():
        spec = find_model(state.settings.models, loaded.name)
        if spec is not None:
            entries.append(native_format.ps_entry(spec, loaded.expires_at, loaded.context_length))
    return _gin_json({"models": entries})


async def v1_models(request: web.Request) -> web.Response:
    body = openai_format.model_list(request.app[STATE].settings.models)
    return web.Response(body=go_json_bytes(body, newline=True), headers={"Content-Type": JSON_V1})


async def v1_model(request: web.Request) -> web.Response:
    settings = request.app[STATE].settings
    name = request.match_info["model"]
    spec = find_model(settings.models, name)
    if spec is None:
        message = f"model '{with_default_tag(name)}' not found"
        body = openai_format.error_body(
            404, message, api_error_only=settings.api_error_only, middleware=False
        )
        return web.Response(
            status=404, body=go_json_bytes(body, newline=True), headers={"Content-Type": JSON_V1}
        )
    body = openai_format.model_object(name, spec)
    return web.Response(body=go_json_bytes(body, newline=True), headers={"Content-Type": JSON_V1})


def _gin_json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=go_json_bytes(data), headers={"Content-Type": JSON_GIN})


def create_app(settings: Settings | None = None) -> web.Application:
    app = web.Application(middlewares=[gin_errors, ollama_guards])
    app[STATE] = StandinState(settings or Settings())
    router = app.router
    router.add_get("/", root)  # GET and HEAD, like ollama
    router.add_get("/api/version", version)
    router.add_get("/api/tags", tags)
    router.add_get("/api/ps", ps, allow_head=False)
    router.add_post("/api/chat", handle_native)
    router.add_post("/v1/chat/completions", handle_openai)
    router.add_get("/v1/models", v1_models, allow_head=False)
    router.add_get("/v1/models/{model}", v1_model, allow_head=False)
    control.add_routes(app)
    return app
