"""The allow-list proxy on its own: rules, CONNECT and plain HTTP, refusals, bad requests."""

from __future__ import annotations

import functools

import pytest
import trio

from kestra_trio.plugin_runtime.proxy import AllowListProxy, is_allowed, parse_rules


@pytest.mark.parametrize(
    ("entries", "host", "port", "allowed"),
    [
        (["api.example.com"], "api.example.com", 443, True),
        (["api.example.com"], "api.example.com", 80, True),
        (["api.example.com"], "api.example.com", 8443, False),
        (["api.example.com"], "API.Example.COM.", 443, True),
        (["api.example.com"], "other.example.com", 443, False),
        (["*.example.com"], "a.b.example.com", 443, True),
        (["*.example.com"], "example.com", 443, False),
        (["*.example.com"], "badexample.com", 443, False),
        (["127.0.0.1:8080"], "127.0.0.1", 8080, True),
        (["127.0.0.1:8080"], "127.0.0.1", 8081, False),
        (["127.0.0.1:8080"], "127.000.000.001", 8080, False),  # not an address ipaddress accepts: a name
        (["[::1]:9000"], "::1", 9000, True),
        (["[::1]:9000"], "[0:0:0:0:0:0:0:1]", 9000, True),
        ([], "anything", 80, False),
    ],
)
def test_rules(entries: list[str], host: str, port: int, allowed: bool) -> None:
    assert is_allowed(parse_rules(entries), host, port) is allowed


async def _echo_server(nursery: trio.Nursery) -> int:
    """An upstream that answers any request with the request line it got."""

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        line = data.split(b"\r\n", 1)[0]
        headers = data.split(b"\r\n\r\n", 1)[0].lower()
        body = line + (b" proxy-header-leaked" if b"proxy-authorization" in headers else b"")
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


async def _proxy(nursery: trio.Nursery, allowed: list[str], refusals: list[tuple[str, str]]) -> int:
    async def refused(target: str, why: str) -> None:
        refusals.append((target, why))

    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = int(listener.socket.getsockname()[1])
    await nursery.start(AllowListProxy(parse_rules(allowed), refused).serve, listener)
    return port


async def _ask(port: int, request: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    data = b""
    async with stream:
        try:
            await stream.send_all(request)
        except trio.BrokenResourceError:  # the proxy answered and closed before reading it all
            pass
        with trio.move_on_after(5):
            try:
                while chunk := await stream.receive_some(4096):
                    data += chunk
            except trio.BrokenResourceError:
                pass
    return data


async def test_plain_http_to_an_allowed_host_is_forwarded_in_origin_form() -> None:
    refusals: list[tuple[str, str]] = []
    async with trio.open_nursery() as nursery:
        upstream = await _echo_server(nursery)
        proxy = await _proxy(nursery, [f"127.0.0.1:{upstream}"], refusals)
        answer = await _ask(
            proxy, b"GET http://127.0.0.1:%d/path?q=1 HTTP/1.1\r\nHost: x\r\nProxy-Authorization: secret\r\n\r\n" % upstream
        )
        nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"GET /path?q=1 HTTP/1.1")
    assert refusals == []


async def test_connect_tunnels_to_an_allowed_host() -> None:
    async with trio.open_nursery() as nursery:
        upstream = await _echo_server(nursery)
        proxy = await _proxy(nursery, [f"127.0.0.1:{upstream}"], [])
        stream = await trio.open_tcp_stream("127.0.0.1", proxy)
        async with stream:
            await stream.send_all(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\nGET /tunnelled HTTP/1.1\r\n\r\n" % upstream)
            data = b""
            with trio.move_on_after(5):
                while chunk := await stream.receive_some(4096):
                    data += chunk
        nursery.cancel_scope.cancel()
    assert data.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK")
    assert data.endswith(b"GET /tunnelled HTTP/1.1")


@pytest.mark.parametrize(
    ("request_bytes", "status", "target"),
    [
        (b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n", b"403", "10.0.0.1:443"),
        (b"GET http://example.org/ HTTP/1.1\r\n\r\n", b"403", "example.org:80"),
        (b"GET https://example.org/ HTTP/1.1\r\n\r\n", b"400", None),
        (b"GET /relative HTTP/1.1\r\n\r\n", b"400", None),
        (b"nonsense\r\n\r\n", b"400", None),
        (b"CONNECT nohostport HTTP/1.1\r\n\r\n", b"400", None),
    ],
)
async def test_refused_and_bad_requests(request_bytes: bytes, status: bytes, target: str | None) -> None:
    refusals: list[tuple[str, str]] = []
    async with trio.open_nursery() as nursery:
        proxy = await _proxy(nursery, ["api.example.com"], refusals)
        answer = await _ask(proxy, request_bytes)
        nursery.cancel_scope.cancel()
    assert answer.split(b" ")[1] == status
    assert [t for t, _ in refusals] == ([target] if target else [])


async def test_an_endless_request_head_is_cut() -> None:
    async with trio.open_nursery() as nursery:
        proxy = await _proxy(nursery, ["api.example.com"], [])
        # all of it is read before the answer: the proxy closes (FIN), not resets (RST)
        answer = await _ask(proxy, b"GET http://api.example.com/ HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 16_500)
        nursery.cancel_scope.cancel()
    assert answer.split(b" ")[1] == b"431"
