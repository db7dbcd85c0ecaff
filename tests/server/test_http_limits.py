"""Request limits that need no server: the body deadline, on trio's test clock."""

from __future__ import annotations

import pytest
import trio
from starlette.requests import Request

from kestra_trio.server.http.call import read_body
from kestra_trio.server.http.context import MIB
from kestra_trio.server.http.errors import ApiError


def trickled(length: int, *, every: float) -> Request:
    """A request announcing `length` bytes whose body comes one byte every `every` seconds."""
    sent = 0

    async def receive() -> dict:
        nonlocal sent
        await trio.sleep(every)
        sent += 1
        return {"type": "http.request", "body": b"x", "more_body": sent < length}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", str(length).encode())]}
    return Request(scope, receive)


async def test_a_body_trickled_in_is_refused_408_at_the_deadline_and_the_connection_closes(autojump_clock) -> None:
    started = trio.current_time()
    with pytest.raises(ApiError) as refused:
        await read_body(trickled(100_000, every=3), MIB, 30)
    assert (refused.value.status, refused.value.code) == (408, "request_timeout")
    assert refused.value.message == "the request body did not arrive within 30s"
    assert refused.value.headers == {"Connection": "close"}
    assert trio.current_time() - started == pytest.approx(30)


async def test_a_slow_body_that_arrives_within_the_deadline_is_read_whole(autojump_clock) -> None:
    assert await read_body(trickled(9, every=3), MIB, 30) == b"x" * 9


async def test_the_size_limit_still_comes_first(autojump_clock) -> None:
    with pytest.raises(ApiError) as refused:
        await read_body(trickled(2 * MIB, every=3), MIB, 30)
    assert refused.value.status == 413
    assert trio.current_time() == 0  # refused from Content-Length, nothing waited for
