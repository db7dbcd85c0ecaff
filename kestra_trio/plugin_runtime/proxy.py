"""The allow-list proxy: the only way out of a restricted task's empty network namespace.

It runs in the engine, one per sandboxed attempt, as trio tasks: HTTP CONNECT (for HTTPS and
any TCP) and plain HTTP in absolute form (`GET http://host/path`). A host not in
`permissions.network` gets `403` and the engine records a refusal (a WARN line naming the
host, and a row `inspect` shows). The proxy reaches the sandbox two ways:

* bubblewrap: it serves a unix socket that is bound into the sandbox, and a tiny forwarder
  (FORWARDER_CODE, run with the sandbox's Python) listens on 127.0.0.1:PROXY_PORT inside the
  sandbox's own network namespace and carries each connection to that socket;
* docker: the engine opens a TCP listener inside the container's network namespace.

Either way the plugin sees `HTTP_PROXY=HTTPS_PROXY=http://127.0.0.1:PROXY_PORT`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

PROXY_PORT = 3128
MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
#: a host written without a port is allowed on these
DEFAULT_PORTS = (80, 443)

RefusalCallback = Callable[[str, str], Awaitable[None]]  # (host:port, why)


@dataclass(frozen=True)
class Rule:
    host: str  # lower case, no brackets; "*.example.com" matches subdomains
    port: int | None  # None: DEFAULT_PORTS

    def allows(self, host: str, port: int) -> bool:
        if self.port is None and port not in DEFAULT_PORTS or self.port is not None and port != self.port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and host != self.host[2:]
        return host == self.host


def _split(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower().rstrip(".")
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry, None


def parse_rules(entries: Sequence[str]) -> tuple[Rule, ...]:
    return tuple(Rule(*_split(entry)) for entry in entries)


def is_allowed(rules: Sequence[Rule], host: str, port: int) -> bool:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:  # one spelling per address: 127.000.0.1 / ::ffff:… are not a way around the list
        host = str(ipaddress.ip_address(host))
    except ValueError:
        pass
    return any(rule.allows(host, port) for rule in rules)


def format_target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AllowListProxy:
    """Serves one sandboxed attempt; `refused(target, why)` is awaited for each refusal."""

    def __init__(self, rules: Sequence[Rule], refused: RefusalCallback) -> None:
        self.rules = tuple(rules)
        self.refused = refused

    async def serve(self, listener: trio.abc.Listener[trio.abc.Stream], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async with listener:
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(self._handle, stream)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        async with stream:
            try:
                await self._serve_one(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass

    async def _serve_one(self, client: trio.abc.Stream) -> None:
        with trio.move_on_after(HEAD_TIMEOUT):
            head, rest = await _read_head(client)
        if head is None:
            return
        request_line, _, header_block = head.partition(b"\r\n")
        parts = request_line.split()
        if len(parts) != 3:
            await _reply(client, 400, "bad request line")
            return
        method, target, version = (p.decode("latin-1") for p in parts)
        if method.upper() == "CONNECT":
            host, _, port_text = target.rpartition(":")
            if not port_text.isdigit() or not host:
                await _reply(client, 400, "CONNECT needs host:port")
                return
            host, port = host.strip("[]"), int(port_text)
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                await _reply(client, 400, "only absolute http:// URLs (and CONNECT for https) go through this proxy")
                return
            host, port = url.hostname, url.port or 80
        where = format_target(host, port)
        if not is_allowed(self.rules, host, port):
            await self.refused(where, f"{method} {where} is not in permissions.network")
            await _reply(client, 403, f"kestra-trio: {where} is not in permissions.network")
            return
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                upstream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            await _reply(client, 502, f"kestra-trio: cannot connect to {where}: {getattr(exc, 'strerror', None) or exc}")
            return
        async with upstream:
            if method.upper() == "CONNECT":
                await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                url = urlsplit(target)
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                headers = [
                    line for line in header_block.split(b"\r\n")
                    if line and not line.lower().startswith((b"proxy-", b"connection:", b"keep-alive:"))
                ]
                upstream_head = f"{method} {path} {version}\r\n".encode("latin-1") + b"".join(
                    line + b"\r\n" for line in headers
                ) + b"Connection: close\r\n\r\n"
                await upstream.send_all(upstream_head)
            if rest:
                await upstream.send_all(rest)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pipe, client, upstream)
                nursery.start_soon(_pipe, upstream, client)


async def _read_head(stream: trio.abc.Stream) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            await _reply(stream, 431, "request head too large")
            return None, b""
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


async def _reply(stream: trio.abc.Stream, status: int, text: str) -> None:
    reasons = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}
    body = (text + "\n").encode()
    head = (
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        await stream.send_all(head + body)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def _pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
    try:
        while chunk := await source.receive_some(65536):
            await sink.send_all(chunk)
        if isinstance(sink, trio.SocketStream):
            await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def open_unix_listener(path: str) -> trio.SocketListener:
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


#: runs inside a bubblewrap sandbox (`python -S -c FORWARDER_CODE SOCKET PORT ARGV...`):
#: listen on 127.0.0.1:PORT, start the plugin, carry each connection to the engine's proxy
#: socket, and end as the plugin ended. Threads are fine here: a separate, tiny process.
FORWARDER_CODE = r"""
import os, signal, socket, sys, threading
sock_path, port, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(64)
pid = os.posix_spawnp(argv[0], argv, os.environ)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)  # the plugin gets the stop signal itself
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(conn):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        up.connect(sock_path)
    except OSError:
        conn.close()
        return
    threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
    pipe(conn, up)
def accept():
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
_, status = os.waitpid(pid, 0)
sys.stdout.flush()
if os.WIFSIGNALED(status):
    sig = os.WTERMSIG(status)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
"""
