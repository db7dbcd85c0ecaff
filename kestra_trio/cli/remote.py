"""The `execution` commands against a server (`--server URL` / KESTRA_TRIO_SERVER, token from
KESTRA_TRIO_TOKEN): the API's documents are turned back into the rows the local renderers
take (`query.documents.*_from_document`), so the output and exit codes are the local ones.

Exit codes: as local; a server that cannot be reached, answers 5xx or does not answer like a
kestra-trio server (a URL of another service): 3 (as a database that cannot be opened); a token
refused (401) or a request refused (400/422): 2.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import httpx
import trio

from kestra_trio.errors import ExitCode, KestraTrioError, UsageError

SERVER_ENV = "KESTRA_TRIO_SERVER"
TOKEN_ENV = "KESTRA_TRIO_TOKEN"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: a follow (`logs --follow`, `start --wait`) whose server went away keeps trying this long
#: (a restart takes 5-30 s) before it gives up with exit 3
RECONNECT_SECONDS = 60.0
#: the wait before each attempt to reconnect grows to this, so a long outage costs little
MAX_RECONNECT_DELAY = 2.0

#: what each answer must hold: a type, {key: shape} for an object (these keys required),
#: [shape] for a list of such items, or a tuple of alternatives
EXECUTION = {"id": str, "workflow_id": str, "namespace": str, "state": str, "created_at": str}
LOG_ENTRY = {"timestamp": str, "level": str, "source": str, "message": str}
SHAPES: dict[str, Any] = {
    "execution": {"execution": EXECUTION, "tasks": [{"task_id": str, "state": str}]},
    "executions": {"executions": [EXECUTION], "next_cursor": (str, type(None))},
    "log_page": {"entries": [LOG_ENTRY], "next_cursor": (str, type(None))},
    "log_entry": LOG_ENTRY,
    "log_end": {"state": (str, type(None))},
    "cancelled": {"id": str, "state": str, "requested": bool, "finished": bool},
    "started": {"id": str, "workflow_id": str},
    "error": {"error": str, "message": str},
}


class ServerUnreachable(KestraTrioError):
    """the server cannot be reached."""

    exit_code = ExitCode.DATABASE


class NotAServer(ServerUnreachable):
    """the URL answers, but not with the API's documents (another service, a proxy's page)."""


class RemoteNotFound(KestraTrioError):
    """404 from the server: its message is the local command's (exit 1)."""


def server_url(option: str | None) -> str | None:
    """`--server` wins over KESTRA_TRIO_SERVER; None: work on the local database."""
    url = option or os.environ.get(SERVER_ENV) or None
    if url is None:
        return None
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--server must be an http:// or https:// URL, got {url!r}")
    return url


def fits(value: Any, shape: Any) -> bool:
    """Does `value` (parsed JSON) have `shape` (see SHAPES)?"""
    if isinstance(shape, dict):
        return isinstance(value, dict) and all(key in value and fits(value[key], inner) for key, inner in shape.items())
    if isinstance(shape, list):
        return isinstance(value, list) and all(fits(item, shape[0]) for item in value)
    if shape is int:
        return type(value) is int
    return isinstance(value, shape)


def _media_type(response: httpx.Response) -> str:
    """The answer's media type, reduced to characters safe to print (it is the far end's text)."""
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return re.sub(r"[^a-z0-9.+/-]", "", media)[:60] or "no content type"


def _reason(exc: httpx.HTTPError) -> str:
    """A one-line reason for a failed request (a timeout's str() is empty)."""
    if isinstance(exc, httpx.TimeoutException):
        seconds = TIMEOUT.connect if isinstance(exc, httpx.ConnectTimeout) else TIMEOUT.read
        return f"no answer within {seconds:g} s"
    return " ".join(str(exc).split()) or type(exc).__name__


class RemoteApi:
    """One server's /api/v1, with the token (if any) on every request; every answer is checked
    to be the API's document (`SHAPES`) before anything reads it."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(base_url=f"{url}/api/v1", headers=headers, timeout=TIMEOUT)

    async def __aenter__(self) -> RemoteApi:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, shape: str, *, params: Mapping[str, Any] | None = None,
                   body: Any = None) -> Any:
        """The answer's document, which has SHAPES[shape]."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self.client.request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"cannot reach the server at {self.url}: {_reason(exc)}") from None
        return self.answer(response, shape)

    def not_a_server(self, status: int, media: str, what: str = "") -> NotAServer:
        return NotAServer(f"{self.url} does not answer like a kestra-trio server (HTTP {status}, {media}{what})")

    def document(self, text: str, shape: str, status: int = 200, media: str = "application/json") -> Any:
        """`text` (a body, or an SSE event's data) parsed and checked against SHAPES[shape]."""
        try:
            value = json.loads(text)
        except ValueError:
            raise self.not_a_server(status, media, ", not JSON") from None
        if not fits(value, SHAPES[shape]):
            raise self.not_a_server(status, media, ", not the document expected")
        return value

    def answer(self, response: httpx.Response, shape: str) -> Any:
        status, media = response.status_code, _media_type(response)
        if media != "application/json":
            raise self.not_a_server(status, media)
        message = (document := self.document(response.text, shape if status < 400 else "error", status)).get("message")
        if status < 400:
            return document
        if response.status_code == 401:
            raise UsageError(f"{message} (set {TOKEN_ENV})")
        if response.status_code == 404:
            raise RemoteNotFound(message)
        if response.status_code in (400, 409, 413, 415, 422):
            raise UsageError(message)
        raise ServerUnreachable(f"the server at {self.url} answered {response.status_code}: {message}")

    async def pages(self, path: str, shape: str, key: str, cursor_param: str,
                    params: Mapping[str, Any]) -> AsyncIterator[list]:
        """Every page of a paged list (`next_cursor` passed back as `cursor_param`)."""
        cursor = None
        while True:
            document = await self.call("GET", path, shape, params={**params, cursor_param: cursor})
            yield document[key]
            cursor = document.get("next_cursor")
            if not cursor:
                return

    async def follow(self, path: str, params: Mapping[str, Any], *,
                     reconnect_seconds: float = RECONNECT_SECONDS) -> AsyncIterator[tuple[str, str, str]]:
        """The SSE stream at `path` as (event, id, data); ends after `event: end`. A dropped
        connection, an unreachable server or a 5xx (a restart) is retried with Last-Event-ID,
        so nothing is missed or repeated, for up to `reconnect_seconds` from the loss; one line
        on stderr says when the connection is lost and when it is back."""
        last_id: str | None = None
        outage: Reconnects | None = None
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                async with self.client.stream("GET", path, params=dict(params), headers=headers,
                                              timeout=httpx.Timeout(None, connect=TIMEOUT.connect)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        self.answer(response, "error")
                    if (media := _media_type(response)) != "text/event-stream":
                        raise self.not_a_server(response.status_code, media)
                    if outage is not None and not outage.back:
                        _notice(f"reconnected to {self.url}")
                        outage.back = True
                    event, event_id, data = "message", "", []
                    async with aclosing(response.aiter_lines()) as lines:
                        async for line in lines:
                            if line == "":
                                if data:
                                    outage = None  # a working stream: the next loss gets a whole budget
                                    if event_id:
                                        last_id = event_id
                                    yield event, event_id, "\n".join(data)
                                    if event == "end":
                                        with trio.move_on_after(1.0):  # the server closes now: read to that
                                            async for _ in lines:  # close (closing httpx's nested generators
                                                pass  # early leaves them to the garbage collector)
                                        return
                                event, event_id, data = "message", "", []
                            elif line.startswith("data:"):
                                data.append(line[5:].removeprefix(" "))
                            elif line.startswith("id:"):
                                event_id = line[3:].strip()
                            elif line.startswith("event:"):
                                event = line[6:].strip()
                            elif line.startswith(":"):  # a keep-alive: the stream was up and quiet
                                outage = None
                reason = "the log stream closed before its end"  # the server restarted: resume after the last id
            except httpx.HTTPError as exc:
                reason = _reason(exc)
            except NotAServer:
                raise
            except ServerUnreachable as exc:  # a 5xx: a server that stops or starts
                reason = str(exc)
            if outage is None or outage.back:
                outage = outage or Reconnects(reconnect_seconds)  # back but lost before any event: same budget
                outage.back = False
                _notice(f"lost the server at {self.url} ({reason}); reconnecting for up to {reconnect_seconds:g} s")
            delay = outage.next_delay()
            if delay is None:
                raise ServerUnreachable(f"lost the server at {self.url} for {reconnect_seconds:g} s: {reason}")
            await trio.sleep(delay)


class Reconnects:
    """When to try again during one outage: waits that grow from 0.25 s to MAX_RECONNECT_DELAY,
    none starting past `budget` seconds from the loss (trio's clock, so tests can jump it)."""

    def __init__(self, budget: float) -> None:
        self.deadline = trio.current_time() + budget
        self.delay = 0.125
        #: "reconnected" was said (a stream answered; the outage ends with its first event)
        self.back = False

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt; None: the budget is spent, give up."""
        left = self.deadline - trio.current_time()
        if left <= 0:
            return None
        self.delay = min(self.delay * 2, MAX_RECONNECT_DELAY)
        return min(self.delay, left)


def _notice(message: str) -> None:
    try:
        sys.stderr.write(f"kestra-trio: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def log_tuple(entry_id: int, entry: Mapping[str, Any]) -> tuple:
    """An API log entry as the tuple the log printers take (`query.logs.LOG_PAGE_COLUMNS`)."""
    from kestra_trio.query.documents import ms_from_iso

    return (entry_id, entry.get("task_id"), ms_from_iso(entry["timestamp"]) or 0, entry["level"], entry["source"],
            entry["message"], entry.get("metadata"))
