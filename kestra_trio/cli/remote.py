"""The `execution` commands against a server (`--server URL` / KESTRA_TRIO_SERVER, token from
KESTRA_TRIO_TOKEN): the API's documents are turned back into the rows the local renderers
take (`query.documents.*_from_document`), so the output and exit codes are the local ones.

Exit codes: as local; a server that cannot be reached or answers 5xx: 3 (as a database that
cannot be opened); a token refused (401) or a request refused (400/422): 2.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from kestra_trio.errors import ExitCode, KestraTrioError, UsageError

SERVER_ENV = "KESTRA_TRIO_SERVER"
TOKEN_ENV = "KESTRA_TRIO_TOKEN"
#: a follow reconnects (with Last-Event-ID) at most this many times in a row without getting anything
MAX_RECONNECTS = 5
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class ServerUnreachable(KestraTrioError):
    """the server cannot be reached."""

    exit_code = ExitCode.DATABASE


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


class RemoteApi:
    """One server's /api/v1, with the token (if any) on every request."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(base_url=f"{url}/api/v1", headers=headers, timeout=TIMEOUT)

    async def __aenter__(self) -> RemoteApi:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                   body: Any = None) -> Any:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self.client.request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"cannot reach the server at {self.url}: {exc or type(exc).__name__}") from None
        return self.answer(response)

    def answer(self, response: httpx.Response) -> Any:
        if response.status_code < 400:
            return response.json()
        message = _error_message(response)
        if response.status_code == 401:
            raise UsageError(f"{message} (set {TOKEN_ENV})")
        if response.status_code == 404:
            raise RemoteNotFound(message)
        if response.status_code in (400, 409, 413, 415, 422):
            raise UsageError(message)
        raise ServerUnreachable(f"the server at {self.url} answered {response.status_code}: {message}")

    async def pages(self, path: str, key: str, cursor_param: str, params: Mapping[str, Any]) -> AsyncIterator[list]:
        """Every page of a paged list (`next_cursor` passed back as `cursor_param`)."""
        cursor = None
        while True:
            document = await self.call("GET", path, params={**params, cursor_param: cursor})
            yield document[key]
            cursor = document.get("next_cursor")
            if not cursor:
                return

    async def follow(self, path: str, params: Mapping[str, Any]) -> AsyncIterator[tuple[str, str, str]]:
        """The SSE stream at `path` as (event, id, data); reconnects with Last-Event-ID after a
        dropped connection, so nothing is missed or repeated; ends after `event: end`."""
        last_id: str | None = None
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                async with self.client.stream("GET", path, params=dict(params), headers=headers,
                                              timeout=httpx.Timeout(None, connect=10.0)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        self.answer(response)
                    event, event_id, data = "message", "", []
                    async for line in response.aiter_lines():
                        if line == "":
                            if data:
                                failures = 0
                                if event_id:
                                    last_id = event_id
                                yield event, event_id, "\n".join(data)
                                if event == "end":
                                    return
                            event, event_id, data = "message", "", []
                        elif line.startswith("data:"):
                            data.append(line[5:].removeprefix(" "))
                        elif line.startswith("id:"):
                            event_id = line[3:].strip()
                        elif line.startswith("event:"):
                            event = line[6:].strip()
            except httpx.HTTPError as exc:
                failures += 1
                if failures > MAX_RECONNECTS:
                    raise ServerUnreachable(f"lost the server at {self.url}: {exc or type(exc).__name__}") from None
                import trio

                await trio.sleep(min(2.0, 0.2 * failures))
                continue
            failures += 1  # closed without `end` (the server restarted): resume after the last id
            if failures > MAX_RECONNECTS:
                raise ServerUnreachable(f"the server at {self.url} keeps closing the log stream")


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def log_tuple(entry_id: int, entry: Mapping[str, Any]) -> tuple:
    """An API log entry as the tuple the log printers take (`query.logs.LOG_PAGE_COLUMNS`)."""
    from kestra_trio.query.documents import ms_from_iso

    return (entry_id, entry.get("task_id"), ms_from_iso(entry["timestamp"]) or 0, entry["level"], entry["source"],
            entry["message"], entry.get("metadata"))
