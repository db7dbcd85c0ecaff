"""Every failure becomes one JSON object with one clear line: `{"error": CODE, "message": TEXT}`.

No stack trace ever reaches a response: an unexpected exception is logged by the server and
answered `500 {"error": "internal", ...}` (see `app.catch_all`).
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from kestra_trio.server.http.responses import json_response


#: how much of a caller's text (a name, a path, an id) an error message repeats
ECHO_CHARS = 100


def echo(text: str) -> str:
    """A caller's text as an error message repeats it: a 17 KB query parameter name is not
    sent back whole."""
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


class ApiError(Exception):
    """An answer other than success: status, a stable code, a one-line message (+ details)."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def not_found(message: str, **details: Any) -> ApiError:
    return ApiError(404, "not_found", message, **details)


def invalid(message: str, **details: Any) -> ApiError:
    """A request whose JSON is well formed but whose values are refused (422)."""
    return ApiError(422, "invalid", message, **details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


_HTTP_CODES = {
    404: ("not_found", "no such route: {method} {path}"),
    405: ("method_not_allowed", "{method} is not allowed on {path}"),
}


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(request, {"error": exc.code, "message": exc.message, **exc.details}, exc.status, exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route, wrong method) in our JSON shape."""
    assert isinstance(exc, HTTPException)
    code, template = _HTTP_CODES.get(exc.status_code, ("error", str(exc.detail)))
    message = template.format(method=echo(request.method), path=echo(request.url.path))
    return json_response(request, {"error": code, "message": message}, exc.status_code, dict(exc.headers or {}))


INTERNAL = {"error": "internal", "message": "internal error; the server log has the details"}


async def internal_error(request: Request, exc: Exception) -> Response:
    return json_response(request, INTERNAL, 500)
