"""The stand-in's own control API under /_standin/ (a prefix real ollama never uses)."""

from __future__ import annotations

import json

from aiohttp import web

from .settings import SettingsError
from .state import STATE

PREFIX = "/_standin"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


async def get_settings(request: web.Request) -> web.Response:
    return _json(request.app[STATE].settings.to_json())


async def patch_settings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        changes = await request.json()
    except ValueError:
        return _json({"error": "body must be a JSON object"}, 400)
    if not isinstance(changes, dict):
        return _json({"error": "body must be a JSON object"}, 400)
    try:
        state.replace_settings(state.settings.patched(changes))
    except SettingsError as exc:
        return _json({"error": str(exc)}, 400)
    return _json(state.settings.to_json())


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.reset()
    return _json(state.settings.to_json())


async def list_requests(request: web.Request) -> web.Response:
    return _json({"requests": request.app[STATE].log.to_json()})


async def get_request(request: web.Request) -> web.Response:
    try:
        record_id = int(request.match_info["id"])
    except ValueError:
        return _json({"error": "id must be an integer"}, 400)
    record = request.app[STATE].log.get(record_id)
    if record is None:
        return _json({"error": f"no request {record_id} in the log"}, 404)
    return _json(record.to_json())


async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].log.clear()
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/settings", get_settings, allow_head=False)
    app.router.add_patch(f"{PREFIX}/settings", patch_settings)
    app.router.add_post(f"{PREFIX}/reset", reset)
    app.router.add_get(f"{PREFIX}/requests", list_requests, allow_head=False)
    app.router.add_delete(f"{PREFIX}/requests", clear_requests)
    app.router.add_get(f"{PREFIX}/requests/{{id}}", get_request, allow_head=False)
