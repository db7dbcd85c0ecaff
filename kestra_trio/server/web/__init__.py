"""The web view: static files shipped in the package, served at `/` by the server's app.

One HTML shell (`static/index.html`) answers every page path (`/`, `/executions/{id}`,
`/workflows`, `/workflows/{id}`); plain JS modules under `static/js/` draw the pages from the
HTTP API (`/api/v1`) with the token the user gave them (an `Authorization` header, never a
cookie: no CSRF surface). Every answer here carries a Content-Security-Policy without
`unsafe-inline`/`unsafe-eval`, so even a string that slipped into the page as HTML could
not run; the pages set untrusted text with `textContent` only (see static/js/dom.js).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"

#: nothing inline, nothing from elsewhere; connect-src 'self' is the API (fetch + SSE)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
#: the page paths the shell answers (the JS router draws the page)
PAGE_PATHS = ("/", "/executions/{execution_id}", "/workflows", "/workflows/{workflow_id}")


class SecurityHeaders:
    """ASGI middleware: SECURITY_HEADERS on every HTTP answer of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode("latin-1").lower() not in SECURITY_HEADERS]
                headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _shell(request: Request) -> Response:
    # the shell is small and changes with the package: always revalidated
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={**SECURITY_HEADERS, "cache-control": "no-cache"})


def web_routes() -> list[BaseRoute]:
    """The routes to add after the API's: the page paths (the HTML shell) and `/static/...`."""
    routes: list[BaseRoute] = [Route(path, _shell, methods=["GET", "HEAD"]) for path in PAGE_PATHS]
    routes.append(Mount("/static", app=SecurityHeaders(StaticFiles(directory=STATIC_DIR)), name="static"))
    return routes
