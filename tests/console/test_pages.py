"""The console's HTTP side through Envoy: pages and assets with caching headers and a
strict CSP, no inline scripts, /healthz for probes only, the API's 404 unchanged, and the
token never written to any log."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from clawgate.common.services import BY_NAME
from clawgate.launcher.stack import Stack
from services.web import assets
from services.web.access_log import redact
from tests.console.browser import Console

PAGES = ("/", "/chat?session=main", "/agents", "/status")


def test_pages_have_a_strict_csp_and_revalidate(console_stack: Stack) -> None:
    for path in PAGES:
        reply = requests.get(console_stack.rest_url + path, timeout=10)
        assert reply.status_code == 200, path
        assert reply.headers["content-type"] == "text/html; charset=utf-8"
        csp = reply.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["cache-control"] == "no-cache"
        again = requests.get(
            console_stack.rest_url + path, headers={"If-None-Match": reply.headers["etag"]},
            timeout=10,
        )  # fmt: skip
        assert again.status_code == 304 and not again.content


def test_no_inline_script_or_style_and_assets_are_immutable(console_stack: Stack) -> None:
    html = requests.get(console_stack.rest_url + "/", timeout=10).text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(" src=" in tag for tag in scripts)
    assert "<style" not in html
    assert not re.search(r"<[^>]*\s(style|on\w+)\s*=", html), "inline style or handler"
    assets = re.findall(r'(?:src|href)="(/console/[^"]+)"', html)
    assert any(a.endswith("/app.js") for a in assets)
    for asset in assets:
        reply = requests.get(console_stack.rest_url + asset, timeout=10)
        assert reply.status_code == 200, asset
        assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert reply.headers["etag"]
    module = requests.get(console_stack.rest_url + assets[-1].replace("app.js", "chat.js"))
    assert module.headers["content-type"].startswith("text/javascript")
    stale = re.sub(r"/console/[^/]+/", "/console/0ld0ld0ld0ld/", assets[-1])
    assert requests.get(console_stack.rest_url + stale, timeout=10).status_code == 404


def test_health_probe_is_not_public_and_api_404_is_unchanged(console_stack: Stack) -> None:
    web = BY_NAME["web"]
    direct = requests.get(web.health_url(console_stack.addrs["web"]), timeout=10)
    assert direct.status_code == 200
    reply = requests.get(console_stack.rest_url + "/api/v1/no-such-thing", timeout=10)
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "unknown_endpoint"
    # The public /healthz is the gateway's liveness (JSON), not the web process's probe.
    public = requests.get(console_stack.rest_url + "/healthz", timeout=10)
    assert public.json()["status"] in ("ok", "fail") and public.text != direct.text


def test_redact_hides_token_query_values() -> None:
    assert redact("/?token=cg-secret") == "/?token=[redacted]"
    assert redact("/chat?session=main&token=cg-secret&x=1") == (
        "/chat?session=main&token=[redacted]&x=1"
    )
    assert redact("/chat?session=token") == "/chat?session=token"


def test_the_token_is_never_written_to_a_log(console: Console, console_stack: Stack) -> None:
    # `console` logged in through /?token=…; make a few more calls that carry the token.
    console.open(f"/chat?session=main&token={console_stack.token}")
    console.wait_text("connection", "connected")
    console.open("/status")
    console.wait_text("connection", "connected")
    logs = sorted(console_stack.plan.logs.glob("*.log"))
    assert {p.stem for p in logs} >= {"envoy", "chat", "agents", "health", "web"}
    web_log = (console_stack.plan.logs / "web.log").read_text()
    assert "token=[redacted]" in web_log  # the visit was logged, without the token
    for path in logs:
        assert console_stack.token not in path.read_text(errors="replace"), path.name


def test_asset_urls_change_whenever_any_file_changes(tmp_path: Path) -> None:
    for name in ("index.html", "app.js", "style.css"):
        (tmp_path / name).write_text((assets.STATIC_DIR / name).read_text())
    first = assets.load(tmp_path)
    assert f'src="{first.base}app.js"' in first.shell.body.decode()
    assert assets.load(tmp_path).version == first.version  # stable across restarts
    (tmp_path / "style.css").write_text("body { color: red; }")
    second = assets.load(tmp_path)
    assert second.version != first.version
    assert f'src="{second.base}app.js"' in second.shell.body.decode()
