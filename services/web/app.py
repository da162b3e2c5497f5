"""The console's HTTP application: pages, versioned assets, security headers, /healthz."""

from __future__ import annotations

from aiohttp import web

from services.web.assets import PREFIX, Asset, Bundle

PAGES = ("/", "/chat", "/agents", "/status")

# No inline script or style anywhere: every script and style sheet is a file of ours.
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # `/?token=…` must not leak to other sites (or our own asset requests) as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
PAGE_CACHE = "no-cache"  # revalidate every visit (ETag), so new versions show at once
ASSET_CACHE = "public, max-age=31536000, immutable"  # versioned URLs never change

BUNDLE = web.AppKey("bundle", Bundle)


def _send(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {"ETag": asset.etag, "Cache-Control": cache_control}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, content_type=asset.content_type, headers=headers)


async def page(request: web.Request) -> web.Response:
    return _send(request, request.app[BUNDLE].shell, PAGE_CACHE)


async def asset(request: web.Request) -> web.Response:
    bundle = request.app[BUNDLE]
    found = bundle.files.get(request.match_info["name"])
    if request.match_info["version"] != bundle.version or found is None:
        raise web.HTTPNotFound(text="no such console file; reload the page\n")
    return _send(request, found, ASSET_CACHE)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.content_type == "text/html":
        response.headers["Content-Type"] = "text/html; charset=utf-8"


def create_app(bundle: Bundle) -> web.Application:
    app = web.Application()
    app[BUNDLE] = bundle
    for path in PAGES:
        app.router.add_get(path, page)
    app.router.add_get(PREFIX + "{version}/{name}", asset)
    app.router.add_get("/healthz", healthz)
    app.on_response_prepare.append(_security_headers)
    return app
