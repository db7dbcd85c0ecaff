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
from kestra_trio.server.http.context import MAX_HEAD_BYTES, MAX_TARGET_BYTES, ApiContext
from kestra_trio.server.http.errors import INTERNAL, ApiError, api_error, http_error, internal_error
from kestra_trio.server.http.responses import encode
from kestra_trio.server.http.spec import API_PREFIX

# a webhook's URL ends with its key, which is its credential
_WEBHOOK_KEY = re.compile(rf"^({re.escape(API_PREFIX)}/webhooks/[^/]*/).+")


def logged_path(path: str | None) -> str | None:
    """A request path as the server's log names it: never a webhook's key."""
    return None if path is None else _WEBHOOK_KEY.sub(r"\1***SECRET***", path)


def head_refusal(scope: Scope) -> tuple[int, dict[str, str]] | None:
    """414 / 431 for a request target or head beyond the documented limits. hypercorn's h11
    limit only sees a head that arrives in pieces; one that arrives in one read is measured
    here (request line + headers, as sent; nothing of it is echoed back)."""
    path = (scope.get("raw_path") or b"").partition(b"?")[0]  # (some servers leave the query on it)
    target = len(path) + 1 + len(scope.get("query_string") or b"")
    if target > MAX_TARGET_BYTES:
        return 414, {"error": "uri_too_long",
                     "message": f"the request path and query are longer than the server accepts ({MAX_TARGET_BYTES} bytes)"}
    # "METHOD TARGET HTTP/1.1\r\n", "name: value\r\n" each, "\r\n"
    head = len(scope.get("method", "")) + 1 + target + 11 + sum(len(n) + len(v) + 4 for n, v in scope["headers"]) + 2
    if head > MAX_HEAD_BYTES:
        return 431, {"error": "headers_too_large",
                     "message": f"the request line and headers are larger than the server accepts ({MAX_HEAD_BYTES} bytes)"}
    return None


async def send_json(send: Send, status: int, value: dict[str, str], *, close: bool = False) -> None:
    """A whole JSON answer at the ASGI level (below Starlette's error handlers)."""
    body = encode(value)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": headers + ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": body})


class CatchAll:
    """The outermost layer: a request whose head is beyond the limits is refused before
    anything reads it; an unexpected exception is logged (with its traceback, in the server's
    log only) and answered 500 with one line — never a stack trace in a response."""

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = head_refusal(scope)
        if refusal is not None:
            await send_json(send, *refusal, close=True)
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
            await send_json(send, 500, INTERNAL)


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
