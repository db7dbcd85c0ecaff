"""cli/remote.py in-process: the reconnect schedule of a follow (`start --wait`, `logs --follow`)
on trio's autojump clock, and a follow that outlives a server outage through an httpx transport
that refuses connections for a while (the CLI end to end: tests/e2e/test_remote_cli.py)."""

from __future__ import annotations

import httpx
import pytest
import trio

from kestra_trio.cli import remote
from kestra_trio.cli.remote import MAX_RECONNECT_DELAY, RECONNECT_SECONDS, Reconnects, RemoteApi, ServerUnreachable


async def test_reconnect_waits_grow_to_the_cap_and_stop_at_the_budget(autojump_clock) -> None:
    outage = Reconnects(RECONNECT_SECONDS)
    start = trio.current_time()
    delays = []
    while (delay := outage.next_delay()) is not None:
        delays.append(delay)
        await trio.sleep(delay)
    assert delays[:5] == [0.25, 0.5, 1.0, MAX_RECONNECT_DELAY, MAX_RECONNECT_DELAY]
    assert max(delays) == MAX_RECONNECT_DELAY  # a long outage is tried every 2 s, not hammered
    assert trio.current_time() - start == pytest.approx(RECONNECT_SECONDS)  # the last wait ends at the budget
    assert outage.next_delay() is None


class FlakyServer:
    """An SSE log stream that sends entry 1, then its server is down (connections refused) for
    `down_for` seconds, then sends entry 2 and the end to whoever resumes."""

    def __init__(self, down_for: float) -> None:
        self.down_for = down_for
        self.up_at: float | None = None
        self.last_event_ids: list[str | None] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.up_at is not None and trio.current_time() < self.up_at:
            raise httpx.ConnectError("connection refused", request=request)
        self.last_event_ids.append(request.headers.get("last-event-id"))
        if self.up_at is None:
            self.up_at = trio.current_time() + self.down_for
            body = 'retry: 2000\n\nid: 1\ndata: {"timestamp": "t", "level": "INFO", "source": "s", "message": "one"}\n\n'
        else:
            body = ('id: 2\ndata: {"timestamp": "t", "level": "INFO", "source": "s", "message": "two"}\n\n'
                    'event: end\ndata: {"state": "SUCCESS"}\n\n')
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())


def _api(server: FlakyServer) -> RemoteApi:
    api = RemoteApi("http://fake.invalid", token="")
    api.client = httpx.AsyncClient(base_url="http://fake.invalid/api/v1", transport=httpx.MockTransport(server.handle))
    return api


async def _events(api: RemoteApi) -> list[tuple[str, str, str]]:
    async with api:
        return [event async for event in api.follow("/executions/x/logs/follow", {})]


async def test_a_follow_outlives_a_30s_restart_and_resumes_after_the_last_id(autojump_clock, capsys) -> None:
    server = FlakyServer(down_for=30)
    events = await _events(_api(server))
    assert [(event, event_id) for event, event_id, _ in events] == [("message", "1"), ("message", "2"), ("end", "")]
    assert server.last_event_ids == [None, "1"]  # resumed right after entry 1: no gap, no repeat
    notices = capsys.readouterr().err.splitlines()
    assert notices == [
        "kestra-trio: lost the server at http://fake.invalid (the log stream closed before its end); "
        "reconnecting for up to 60 s",
        "kestra-trio: reconnected to http://fake.invalid",
    ]


async def test_a_follow_gives_up_with_exit_3_when_the_outage_outlasts_the_budget(autojump_clock, capsys) -> None:
    server = FlakyServer(down_for=float("inf"))
    start = trio.current_time()
    with pytest.raises(ServerUnreachable, match="^lost the server at http://fake.invalid for 60 s: connection refused$") as info:
        await _events(_api(server))
    assert info.value.exit_code == 3
    assert trio.current_time() - start == pytest.approx(remote.RECONNECT_SECONDS)
    assert capsys.readouterr().err.count("lost the server") == 1
