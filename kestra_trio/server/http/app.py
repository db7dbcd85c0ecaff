"""The ASGI app: the API under /api/v1 (declared in `api.OPERATIONS`), `/health` and `/metrics`
at the root too (where load balancers and Prometheus look by default), and room at `/` for
the web view (`extra_routes`)."""

from __future__ import annotations

import re
import traceback
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kestra_trio.server.http.api import OPERATIONS
from kestra_trio.server.http.call import endpoint
from kestra_trio.server.http.context import ApiContext
from kestra_trio.server.http.errors import INTERNAL, ApiError, api_error, http_error, internal_error
from kestra_trio.server.http.responses import encode
from kestra_trio.server.http.spec import API_PREFIX

# a webhook's URL ends with its key, which is its credential
_WEBHOOK_KEY = re.compile(rf"^({re.escape(API_PREFIX)}/webhooks/[^/]*/).+")


def logged_path(path: str | None) -> str | None:
    """A request path as the server's log names it: never a webhook's key."""
    return None if path is None else _WEBHOOK_KEY.sub(r"\1***SECRET***", path)


class CatchAll:
    """The outermost layer: an unexpected exception is logged (with its traceback, in the
    server's log only) and answered 500 with one line — never a stack trace in a response."""

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            self.ctx.log.error(
                "internal error", method=scope.get("method"), path=logged_path(scope.get("path")), error=repr(exc)[:500],
                traceback="".join(traceback.format_exception(exc))[-4000:],
            )
            if started:  # a stream already under way: all that can be done is to end it
                return
            body = encode(INTERNAL)
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def build_app(ctx: ApiContext, extra_routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    routes: list[BaseRoute] = [
        Route(op.full_path, endpoint(op), methods=[op.method], name=op.operation_id) for op in OPERATIONS
    ]
    by_id = {op.operation_id: op for op in OPERATIONS}
    routes += [Route("/health", endpoint(by_id["health"]), methods=["GET"]),
               Route("/metrics", endpoint(by_id["metrics"]), methods=["GET"])]
    app = Starlette(
        routes=[*routes, *extra_routes],
        # Exception: Starlette's last layer answers with ours, then re-raises to CatchAll, which logs it
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: internal_error},
    )
    app.state.ctx = ctx
    app.state.masker = ctx.masker
    return CatchAll(app, ctx)
