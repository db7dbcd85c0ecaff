"""No orphans even if the engine is SIGKILLed: one small watchdog process per engine.

The kernel's parent-death signal reaches only a direct child and would need a preexec_fn
(slow, thread-unsafe), and grandchildren escape it anyway. Instead the engine starts one
``python -S -c WATCHDOG`` in its own session whose stdin is a pipe from the engine. The
engine writes ``+<pgid>`` after spawning a plugin and ``-<pgid>`` once that group is dead.
When the watchdog reads EOF — the engine exited or died in any way, since the kernel closes
the pipe's write end with the engine — it SIGKILLs every group still registered and exits.

Docker containers are registered the same way (``+c<id> <socket>``): on EOF the watchdog
removes them through the Docker Engine API (``DELETE /containers/<id>?force=1``), since a
container is not a child of the engine and no signal of ours reaches it.

The remaining window: an engine killed between spawning a plugin and writing ``+pgid``
(a few microseconds) leaves that group behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

WATCHDOG_CODE = r"""
import os, signal, sys
for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
groups = set()
containers = {}
stdin = sys.stdin.buffer
while True:
    try:
        line = stdin.readline()
    except OSError:
        line = b""
    if not line:
        break
    line = line.strip()
    if line[1:2] == b"c":
        ident, _, sock = line[2:].partition(b" ")
        if line[:1] == b"+" and ident.isalnum():
            containers[ident] = sock
        else:
            containers.pop(ident, None)
        continue
    if len(line) < 2 or not line[1:].isdigit():
        continue
    pgid = int(line[1:])
    if pgid <= 1:
        continue
    if line[:1] == b"+":
        groups.add(pgid)
    elif line[:1] == b"-":
        groups.discard(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
if containers:
    import socket
    for ident, sock in containers.items():
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(30)
                conn.connect(sock.decode())
                conn.sendall(b"DELETE /containers/" + ident + b"?force=1&v=1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
                while conn.recv(4096):
                    pass
        except OSError:
            pass
"""


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class GroupReaper:
    """The engine's side of the watchdog pipe. Use :func:`open_group_reaper` to get one."""

    def __init__(self, process: trio.Process) -> None:
        self._process = process
        self._lock = trio.Lock()
        self.registered: set[int] = set()
        #: False once the watchdog is gone (killed by someone); registrations are then no-ops
        self.alive = True

    @property
    def pid(self) -> int:
        return self._process.pid

    async def _send(self, line: str) -> None:
        stdin = self._process.stdin
        if not self.alive or stdin is None:
            return
        async with self._lock:  # one writer at a time on the pipe
            try:
                await stdin.send_all(line.encode())
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.alive = False

    async def register(self, pgid: int) -> None:
        """The watchdog will kill group ``pgid`` if the engine dies before unregistering it."""
        self.registered.add(pgid)
        await self._send(f"+{pgid}\n")

    async def register_container(self, container_id: str, socket_path: str) -> None:
        """The watchdog will remove this Docker container if the engine dies first."""
        await self._send(f"+c{container_id} {socket_path}\n")

    async def unregister_container(self, container_id: str) -> None:
        await self._send(f"-c{container_id}\n")

    async def unregister(self, pgid: int) -> None:
        """Group ``pgid`` is dead; forget it (its number may be reused by the system)."""
        self.registered.discard(pgid)
        await self._send(f"-{pgid}\n")


@asynccontextmanager
async def open_group_reaper() -> AsyncIterator[GroupReaper]:
    """Start the watchdog; on exit close its pipe (it kills what is left) and wait for it."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-S", "-c", WATCHDOG_CODE],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        cwd="/",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    reaper = GroupReaper(process)
    try:
        yield reaper
    finally:
        with trio.CancelScope(shield=True):
            if process.stdin is not None:
                await process.stdin.aclose()
            with trio.move_on_after(2.0):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
