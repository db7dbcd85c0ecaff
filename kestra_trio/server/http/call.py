"""One request, checked against its `Operation` before the handler sees it.

Order: token (401) → shutdown (503 for starts) → query parameters (400: unknown, repeated,
wrong type) → body (415 not JSON, 413 too large, 408 too slow, 400 malformed, 422 against the
schema).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response

from kestra_trio.server.http.context import ApiContext
from kestra_trio.server.http.errors import ApiError, bad_request, echo, invalid
from kestra_trio.server.http.schemas import SCHEMAS
from kestra_trio.server.http.spec import Operation, Param


@dataclass
class Call:
    request: Request
    query: dict[str, Any] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)


def endpoint(op: Operation):
    """The Starlette endpoint of `op`: checks, then `op.handler(ctx, call)`."""

    async def run(request: Request) -> Response:
        ctx: ApiContext = request.app.state.ctx
        refuse_cross_site(request)
        if not op.public and await authorize(ctx, request) is None:
            refuse_foreign_host(request)
        if op.starts and ctx.stopping:
            raise ApiError(503, "shutting_down", "the server is shutting down and starts nothing new; try again later",
                           headers={"Retry-After": "30"})
        call = Call(request, _query(op, request), dict(request.path_params))
        if op.body is not None:
            call.body = await read_json(request, op.body, required=op.body_required)
        return await op.handler(ctx, call)

    run.__name__ = op.operation_id
    return run


# ------------------------------------------------------------------ browsers

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def refuse_cross_site(request: Request) -> None:
    """A browser page of another site must not change anything here (CSRF): a state-changing
    request whose `Origin` is not this server's own is refused. curl and the CLI send none."""
    origin = request.headers.get("origin")
    if request.method in ("GET", "HEAD") or origin is None:
        return
    from urllib.parse import urlsplit

    if urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        raise ApiError(403, "cross_origin", "requests from another site's page are refused (Origin does not match Host)")


def refuse_foreign_host(request: Request) -> None:
    """With no token required (an open API on loopback), only loopback host names are served:
    a page on a domain an attacker points at 127.0.0.1 (DNS rebinding) is refused."""
    from urllib.parse import urlsplit

    host = (urlsplit(f"//{request.headers.get('host', '')}").hostname or "").lower()
    if host not in LOOPBACK_NAMES:
        raise ApiError(403, "foreign_host", f"host name {host[:100]!r} is not served without an API token "
                       "(use localhost / 127.0.0.1, or create a token: `kestra-trio server token create NAME`)")


# ------------------------------------------------------------------ tokens


def bearer_token(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


async def authorize(ctx: ApiContext, request: Request) -> str | None:
    """The id of the valid token the request carries, or None when no token is required.

    Raises:
        ApiError: 401 when a token is required (some token exists, or the server listens
            beyond loopback) and the request has no valid one.
    """
    token = bearer_token(request)
    check = await ctx.tokens.check(token or None)
    if check.token_id is not None:
        return check.token_id
    if not (check.required or ctx.tokens_always_required):
        return None
    message = (
        "a valid API token is required: send `Authorization: Bearer <token>`"
        if token is None
        else "the API token is not valid (unknown or revoked)"
    )
    raise ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="kestra-trio"'})


# ------------------------------------------------------------------ query parameters


def _query(op: Operation, request: Request) -> dict[str, Any]:
    declared = {p.name: p for p in op.params if p.where == "query"}
    items = request.query_params.multi_items()
    result: dict[str, Any] = {}
    for name, value in items:
        param = declared.get(name)
        if param is None:
            allowed = ", ".join(declared) or "none"
            raise bad_request(f"unknown query parameter {echo(name)!r} (allowed: {allowed})")
        if param.schema.get("type") == "array":  # repeatable: `?label=a=1&label=b=2`
            if len(value) > 4096:
                raise bad_request(f"query parameter {name!r} is too long")
            if len(result.setdefault(name, [])) >= 50:
                raise bad_request(f"query parameter {name!r} is given more than 50 times")
            result[name].append(value)
            continue
        if name in result:
            raise bad_request(f"query parameter {name!r} is given twice; give it once")
        result[name] = _typed(param, value)
    for name, param in declared.items():
        if param.required and name not in result:
            raise bad_request(f"query parameter {name!r} is required")
    return result


def _typed(param: Param, value: str) -> Any:
    schema = param.schema
    if schema.get("type") != "integer":
        if len(value) > schema.get("maxLength", 4096):
            raise bad_request(f"query parameter {param.name!r} is too long")
        return value
    from kestra_trio.config import ascii_int

    try:
        number = ascii_int(value.strip())
    except ValueError:
        raise bad_request(f"query parameter {param.name!r} must be a whole number, got {value[:50]!r}") from None
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and number < low) or (high is not None and number > high):
        raise bad_request(f"query parameter {param.name!r} must be between {low} and {high}, got {number}")
    return number


# ------------------------------------------------------------------ JSON bodies


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # curl -d without -H; the body must still parse as JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_json(request: Request, schema: str | None, *, required: bool = True) -> Any:
    """The body as JSON, checked against SCHEMAS[schema] (None: any JSON value)."""
    if not _is_json(request.headers.get("content-type")):
        raise ApiError(415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)")
    ctx: ApiContext = request.app.state.ctx
    raw = await read_body(request, ctx.max_body_bytes, ctx.body_seconds)
    if not raw.strip():
        if required:
            raise bad_request("the request needs a JSON body")
        return {} if schema is not None else None
    from kestra_trio.sdk.protocol import loads_untrusted

    try:
        value = loads_untrusted(raw)
    except UnicodeDecodeError:
        raise bad_request("the body is not UTF-8 text") from None
    except ValueError as exc:
        raise bad_request(f"the body is not valid JSON: {_json_problem(exc)}") from None
    if schema is not None:
        check_schema(schema, value)
    return value


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The body, refused with 413 as soon as it is known to be larger than `limit` (from its
    Content-Length, or while it streams in): a huge body is never held in memory. It must have
    arrived within `seconds` (408, and the connection closes): a client trickling a byte now
    and then cannot hold a connection open."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large(limit)
    chunks, total = [], 0
    with trio.move_on_after(seconds) as reading:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise too_large(limit)
            chunks.append(chunk)
    if reading.cancelled_caught:
        raise ApiError(408, "request_timeout", f"the request body did not arrive within {seconds:g}s",
                       headers={"Connection": "close"})
    return b"".join(chunks)


def too_large(limit: int) -> ApiError:
    from kestra_trio.model.sizes import format_size

    return ApiError(413, "too_large", f"the request body is larger than the server accepts ({format_size(limit)})")


def _json_problem(exc: ValueError) -> str:
    """Why a body is not JSON, in our words: never an exception's own text (Python's can name
    interpreter settings, `sys.set_int_max_str_digits()`)."""
    import json

    from kestra_trio.sdk.protocol import NotJson

    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    return str(exc) if isinstance(exc, NotJson) else "it cannot be read as JSON"


@functools.cache
def _validator(name: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}})


def check_schema(name: str, value: Any) -> None:
    """Raises ApiError 422 with one line naming the first problem (by place in the body)."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(name).iter_errors(value))
    if error is None:
        return
    place = echo("".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip("."))
    where = f"{place}: " if place else ""
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, Mapping) else []
        message = f"unknown field {echo(extra[0])!r}" if extra else "unknown field"
        if allowed:
            message += f" (allowed: {', '.join(allowed)})"
        raise invalid(where + message)
    if error.validator == "required":
        raise invalid(where + str(error.message).replace(" is a required property", " is required"))
    if error.validator == "type":
        raise invalid(f"{place or 'the body'} must be {_kind(error.validator_value)}")
    if error.validator in ("maxLength", "maxProperties"):
        raise invalid(f"{place or 'the body'} is too long (at most {error.validator_value})")
    if error.validator == "pattern":
        raise invalid(f"{place or 'the body'} is not a valid id (letters, digits, '_' and '-', starting with a letter or digit)")
    raise invalid(where + error.message[:200])


def _kind(value: Any) -> str:
    kinds = value if isinstance(value, list) else [value]
    names = {"object": "an object", "array": "a list", "string": "text", "integer": "a whole number",
             "number": "a number", "boolean": "true or false", "null": "null"}
    return " or ".join(names.get(k, k) for k in kinds)
