"""`clawgate status`: the health report as a table, for people and scripts.

Exit code: 0 ok, 1 degraded, 2 down or unreachable — usable as a probe. `--json` prints
the report as the API returns it; `--watch SECONDS` redraws until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any, TextIO

from clawgate.client.api import no_proxy_opener
from clawgate.client.connection import NoToken, saved_token, saved_url
from clawgate.common.config import load_config

EXIT_CODES = {"ok": 0, "degraded": 1, "down": 2}
COLOURS = {"ok": "32", "degraded": "33", "down": "31"}  # green, yellow, red


def gateway_url(config_path: str | None) -> tuple[str, str | None]:
    """The gateway's base URL and token, as `onboard` saved them (or from the env)."""
    config = load_config(config_path)
    try:
        token: str | None = saved_token(config)
    except NoToken:
        token = None  # the overall status needs no token
    return saved_url(config), token


def fetch_report(url: str, token: str | None, timeout: float = 5.0) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url + "/api/v1/health", headers=headers)
    try:
        with no_proxy_opener().open(request, timeout=timeout) as reply:
            body = reply.read()
    except urllib.error.HTTPError as err:  # 503 still carries the report
        body = err.read()
    report: dict[str, Any] = json.loads(body)
    if "error" in report:
        raise RuntimeError(report["error"].get("message", "error"))
    return report


def _paint(text: str, status: str, colour: bool) -> str:
    code = COLOURS.get(status)
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def _detail(component: dict[str, Any]) -> str:
    worker = component.get("worker") or {}
    parts = [component.get("detail") or ""]
    if component.get("kind") == "llm_worker":
        parts.append(f"in flight {worker.get('in_flight', 0)}")
        vram = float(worker.get("vram_used_bytes") or 0)
        if vram:
            parts.append(f"VRAM {vram / 2**30:.1f} GiB")
        if worker.get("skipped"):
            parts.append("skipped after failures")
    if component.get("version"):
        parts.append(f"v{component['version']}, up {float(component['uptime_seconds']):.0f}s")
    if component.get("status") != "ok" and component.get("last_error"):
        parts.append(f"last error: {component['last_error']}")
    return "; ".join(p for p in parts if p)


def render(report: dict[str, Any], colour: bool) -> str:
    status = report.get("status", "down")
    lines = [f"Clawgate {report.get('version', '')}: {_paint(status.upper(), status, colour)}"]
    if report.get("hint"):
        lines.append(report["hint"])
    rows = [
        (c["name"], c.get("kind", ""), c.get("status", ""), f"{c.get('latency_ms', 0):.0f} ms",
         _detail(c))
        for c in report.get("components", [])
    ]  # fmt: skip
    if rows:
        width = [max(len(r[i]) for r in rows) for i in range(4)]
        for name, kind, state, latency, detail in rows:
            cells = [name.ljust(width[0]), kind.ljust(width[1])]
            cells.append(_paint(state.ljust(width[2]), state, colour))
            cells += [latency.rjust(width[3]), detail]
            lines.append("  ".join(cells))
    cache = report.get("cache") or {}
    if cache:
        lines.append(
            "cache: " + ", ".join(f"{k} {cache.get(k, 0)}" for k in ("hits", "misses", "bypasses"))
        )
    return "\n".join(lines)


def run(
    config_path: str | None, *, as_json: bool, watch: float | None, out: TextIO = sys.stdout
) -> int:
    url, token = gateway_url(config_path)
    colour = out.isatty() and not os.environ.get("NO_COLOR")
    while True:
        try:
            report = fetch_report(url, token)
        except (OSError, ValueError, RuntimeError) as err:
            print(f"cannot read {url}/api/v1/health: {err}", file=sys.stderr)
            code = 2
        else:
            code = EXIT_CODES.get(report.get("status", "down"), 2)
            if watch and colour:
                out.write("\033[H\033[2J")  # clear the screen between rounds
            out.write((json.dumps(report, indent=2) if as_json else render(report, colour)) + "\n")
            out.flush()
        if not watch:
            return code
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return code
