"""Restricted mode in Docker: one container per attempt, through the Docker Engine API.

The container has no network (`NetworkMode: none`; with `permissions.network` the engine
opens its allow-list proxy inside the container's network namespace), a read-only root, a
private /tmp, the attempt's work folder and control folder (result file) mounted, the
granted paths, the same memory/process/file-size/CPU limits, no capabilities and
`no-new-privileges`, and docker-init as PID 1 so a stop signal reaches the plugin. Its
stdout and stderr come back on the attach stream (multiplexed frames) and go through the
same pipeline as a child process's pipes; the input message goes in on its stdin.

Cancel or timeout: `stop` (SIGTERM, the kill grace, then SIGKILL), `kill` at once after a
second Ctrl+C. The container is always removed; if the engine dies, its watchdog removes it.

The client is h11 (sans-IO HTTP/1.1, the parser under httpcore) over
`trio.open_unix_socket`: an attach with stdin is a hijacked, two-way connection that a
request/response client library does not offer.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import h11
import trio

from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.plugin_runtime import process
from kestra_trio.plugin_runtime.bwrap import (
    CONTROL_DIR,
    WATCH_INTERVAL,
    SDK_DIR,
    _SDK_PACKAGE,
    RefusalRecorder,
    _attempt_folders,
    proxy_env,
    record_limit,
    sandboxed_plan,
    serving_proxy,
)
from kestra_trio.plugin_runtime.cgroups import existing_group, over_limit
from kestra_trio.plugin_runtime.proxy import PROXY_PORT
from kestra_trio.plugin_runtime.runtime import Invocation, Outcome, ProcessHandle
from kestra_trio.plugin_runtime.sandbox import SANDBOX_UID, SandboxPolicy, enforcement, limit_from_exit, limit_outcome
from kestra_trio.plugin_runtime.process import RuntimeSettings
from kestra_trio.plugin_runtime.streams import MAX_LINE_BYTES, LineSplitter
from kestra_trio.state.states import Reason

DOCKER_HOST_ENV = "DOCKER_HOST"
DEFAULT_SOCKET = "/var/run/docker.sock"
API = "/v1.41"  # Docker 20.10; newer engines accept older API versions
REQUEST_TIMEOUT = 30.0
PULL_TIMEOUT = 600.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: a container that waits for the proxy before the plugin starts (the listener is opened
#: from outside once the container's network namespace exists)
PROXY_READY = f"{CONTROL_DIR}/.proxy-ready"
_GATE = f'while [ ! -e {PROXY_READY} ]; do sleep 0.01; done; exec "$@"'


class DockerError(Exception):
    """The Docker engine refused or did not answer; the message says what to do."""


@dataclass(frozen=True)
class DockerClient:
    socket_path: str

    @classmethod
    def from_environment(cls, environ: Any = None) -> DockerClient:
        host = (environ if environ is not None else os.environ).get(DOCKER_HOST_ENV, "")
        if host.startswith("unix://"):
            return cls(host[len("unix://") :])
        return cls(DEFAULT_SOCKET)

    async def _connect(self) -> trio.SocketStream:
        try:
            return await trio.open_unix_socket(self.socket_path)
        except OSError as exc:
            raise DockerError(
                f"no Docker engine answers at {self.socket_path} ({exc.strerror or exc}); start dockerd, "
                f"or set {DOCKER_HOST_ENV}=unix:///path/to/docker.sock"
            ) from None

    async def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = REQUEST_TIMEOUT, ok: tuple[int, ...] = (200, 201, 204, 304)
    ) -> Any:
        """One request on its own connection; the decoded JSON answer (None when empty)."""
        with trio.move_on_after(timeout) as scope:
            stream = await self._connect()
            async with stream:
                status, data = await _exchange(stream, method, path, body)
        if scope.cancelled_caught:
            raise DockerError(f"the Docker engine did not answer {method} {path} within {timeout:g}s")
        if status not in ok:
            raise DockerError(_api_message(data) or f"{method} {path} answered {status}")
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode(errors="replace")

    async def ping(self) -> None:
        await self.request("GET", "/_ping", timeout=5.0)

    async def ensure_image(self, image: str) -> None:
        """Pull the image if this engine does not have it yet (Kestra's if-not-present)."""
        try:
            await self.request("GET", f"{API}/images/{quote(image, safe='')}/json")
            return
        except DockerError:
            pass
        name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
        try:
            answer = await self.request(
                "POST", f"{API}/images/create?{urlencode({'fromImage': name, 'tag': tag})}", timeout=PULL_TIMEOUT
            )
        except DockerError as exc:
            raise DockerError(f"image {image!r} is not on this Docker engine and cannot be pulled: {exc}") from None
        text = answer if isinstance(answer, str) else json.dumps(answer)
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("error"):
                raise DockerError(f"image {image!r} is not on this Docker engine and cannot be pulled: {record['error']}")


async def _exchange(stream: trio.SocketStream, method: str, path: str, body: Any) -> tuple[int, bytes]:
    conn = h11.Connection(h11.CLIENT)
    payload = b"" if body is None else json.dumps(body).encode()
    headers = [("Host", "docker"), ("Content-Length", str(len(payload)))]
    if body is not None:
        headers.append(("Content-Type", "application/json"))
    await stream.send_all(conn.send(h11.Request(method=method, target=path, headers=headers)))
    await stream.send_all(conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage()))
    status, chunks, size = 0, [], 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_RESPONSE_BYTES:
                raise DockerError(f"the Docker engine's answer to {method} {path} is larger than {MAX_RESPONSE_BYTES} bytes")
            chunks.append(bytes(event.data))
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return status, b"".join(chunks)


def _api_message(data: bytes) -> str | None:
    try:
        message = json.loads(data).get("message")
    except (ValueError, AttributeError):
        return None
    return str(message) if message else None


async def _attach(client: DockerClient, container: str) -> tuple[trio.SocketStream, bytes]:
    """A hijacked connection: stdin goes in, multiplexed stdout/stderr frames come out."""
    stream = await client._connect()
    conn = h11.Connection(h11.CLIENT)
    target = f"{API}/containers/{container}/attach?stream=1&stdin=1&stdout=1&stderr=1"
    request = h11.Request(
        method="POST", target=target,
        headers=[("Host", "docker"), ("Connection", "Upgrade"), ("Upgrade", "tcp"), ("Content-Length", "0")],
    )
    await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.InformationalResponse) and event.status_code == 101:
            return stream, conn.trailing_data[0]
        elif isinstance(event, h11.Response):
            await stream.aclose()
            raise DockerError(f"attach answered {event.status_code}")
        elif isinstance(event, h11.ConnectionClosed):
            raise DockerError("attach: the Docker engine closed the connection")


def _container_user() -> str:
    """An unprivileged uid in the container: nobody when the engine is root, else the
    engine's own uid (so the files it writes stay removable)."""
    if os.geteuid() == 0:
        return f"{SANDBOX_UID}:{SANDBOX_UID}"
    return f"{os.getuid()}:{os.getgid()}"


def container_config(policy: SandboxPolicy, plan: Any, *, work: Path, control: Path, plugin_dir: Path, label: dict[str, str]) -> dict[str, Any]:
    binds = [f"{work}:{work}:rw", f"{control}:{CONTROL_DIR}:rw", f"{plugin_dir}:{plugin_dir}:ro", f"{_SDK_PACKAGE}:{SDK_DIR}/kestra_trio:ro"]
    binds += [f"{path}:{path}:ro" for path in policy.read] + [f"{path}:{path}:rw" for path in policy.write]
    ulimits = [{"Name": "fsize", "Soft": policy.file_size, "Hard": policy.file_size}, {"Name": "core", "Soft": 0, "Hard": 0}]
    if policy.cpu_seconds is not None:
        seconds = max(1, int(-(-policy.cpu_seconds // 1)))
        ulimits.append({"Name": "cpu", "Soft": seconds, "Hard": seconds + 1})
    return {
        "Image": policy.image,
        "Cmd": plan.argv,
        "Env": [f"{k}={v}" for k, v in plan.env.items()],
        "WorkingDir": str(plan.cwd or work),
        "User": _container_user(),
        "OpenStdin": True, "StdinOnce": True, "AttachStdin": True, "AttachStdout": True, "AttachStderr": True,
        "Tty": False,
        "Labels": label,
        "HostConfig": {
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "Binds": binds,
            "Tmpfs": {"/tmp": f"rw,nosuid,nodev,size={policy.memory},mode=1777"},
            "Memory": policy.memory, "MemorySwap": policy.memory, "PidsLimit": policy.processes,
            "Ulimits": ulimits,
            "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
            "Init": True,
            "LogConfig": {"Type": "none"},  # the engine keeps the lines; nothing piles up on disk
        },
    }


_CLONE_NEWNET = 0x40000000


def listen_in_netns(pid: int, port: int) -> socket.socket:
    """A TCP listener on 127.0.0.1:port inside the network namespace of process ``pid``
    (needs CAP_SYS_ADMIN: root). Only this thread switches, and only for two calls."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind(("127.0.0.1", port))
                sock.listen(64)
            finally:
                if libc.setns(own, _CLONE_NEWNET) != 0:  # pragma: no cover - cannot happen
                    os.abort()
        finally:
            os.close(target)
    finally:
        os.close(own)
    return sock


@dataclass
class DockerRuntime(RuntimeSettings):
    """`sandbox: docker`: one container per attempt (module docstring)."""

    refused: RefusalRecorder | None = None
    environ: Any = None
    client: DockerClient | None = None

    async def run_action(
        self,
        invocation: Invocation,
        *,
        log_send: trio.MemorySendChannel[LogEntry],
        task_status: trio.TaskStatus[ProcessHandle] = trio.TASK_STATUS_IGNORED,
    ) -> Outcome:
        policy = invocation.policy
        assert isinstance(policy, SandboxPolicy)
        try:
            return await self._run_in_folders(invocation, policy, log_send, task_status)
        except OSError as exc:  # the attempt's folders could not be made
            return Outcome.failure(Reason.SANDBOX_FAILED, f"cannot prepare the sandbox: {exc}", type="SandboxFailed")

    async def _run_in_folders(
        self, invocation: Invocation, policy: SandboxPolicy, log_send: trio.MemorySendChannel[LogEntry], task_status: Any
    ) -> Outcome:
        client = self.client or DockerClient.from_environment(self.environ)
        async with _attempt_folders(invocation) as (work, control, _):
            if os.geteuid() == 0:  # the container runs as nobody: its folders are its own
                for folder in (work, control):
                    os.chown(folder, SANDBOX_UID, SANDBOX_UID)
            invocation = replace(invocation, workdir=work)
            plan = sandboxed_plan(invocation, policy, work, control, self.environ)
            if isinstance(plan, Outcome):
                return plan
            if plan.result_path is not None and os.geteuid() == 0:
                os.chown(plan.result_path, SANDBOX_UID, SANDBOX_UID)
            if plan.argv and plan.argv[0] == sys.executable:  # the image's Python runs the plugin
                plan.argv[0] = "python3"
            if policy.network:
                plan.env.update(proxy_env(f"http://127.0.0.1:{PROXY_PORT}"))
                plan.argv = ["/bin/sh", "-c", _GATE, "sh", *plan.argv]
            config = container_config(
                policy, plan, work=work, control=control, plugin_dir=invocation.manifest.folder,
                label={"kestra-trio.execution": invocation.execution_id, "kestra-trio.task": invocation.task_id},
            )
            outcome = await self._run(client, invocation, plan, config, control, log_send, task_status)
            await record_limit(self.refused, invocation, outcome)
            return outcome

    async def _run(
        self, client: DockerClient, invocation: Invocation, plan: Any, config: dict[str, Any], control: Path,
        log_send: trio.MemorySendChannel[LogEntry], task_status: Any,
    ) -> Outcome:
        try:
            created = await client.request("POST", f"{API}/containers/create", config)
        except DockerError as exc:
            return Outcome.failure(Reason.SANDBOX_FAILED, f"docker could not create the container: {exc}", type="SandboxFailed")
        container = str(created["Id"])
        try:
            if self.reaper is not None:
                await self.reaper.register_container(container, client.socket_path)
            return await self._supervise(client, container, invocation, plan, control, log_send, task_status)
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(REQUEST_TIMEOUT):
                    try:
                        await client.request("DELETE", f"{API}/containers/{container}?force=1&v=1", ok=(204, 404))
                    except DockerError as exc:
                        await log_send.send(_note(invocation, LogLevel.WARN, f"docker could not remove container {container[:12]}: {exc}"))
                if self.reaper is not None:
                    await self.reaper.unregister_container(container)

    async def _supervise(
        self, client: DockerClient, container: str, invocation: Invocation, plan: Any, control: Path,
        log_send: trio.MemorySendChannel[LogEntry], task_status: Any,
    ) -> Outcome:
        policy = invocation.policy
        assert isinstance(policy, SandboxPolicy)
        try:
            stream, early = await _attach(client, container)
        except DockerError as exc:
            return Outcome.failure(Reason.SANDBOX_FAILED, f"docker could not attach to the container: {exc}", type="SandboxFailed")
        handle = ProcessHandle(pid=0, pgid=0)
        async with stream:
            try:
                await client.request("POST", f"{API}/containers/{container}/start", ok=(204, 304))
                state = (await client.request("GET", f"{API}/containers/{container}/json"))["State"]
                handle.pid = handle.pgid = int(state.get("Pid") or 0)
                listener = None
                if policy.network:
                    sock = listen_in_netns(handle.pid, PROXY_PORT)
                    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
            except (DockerError, OSError) as exc:
                return Outcome.failure(Reason.SANDBOX_FAILED, f"docker could not start the container: {exc}", type="SandboxFailed")
            task_status.started(handle)
            if listener is None:
                return await self._attend(client, container, invocation, plan, stream, early, handle, log_send)
            async with serving_proxy(invocation, policy, control, log_send, self.refused, listener=listener):
                (control / Path(PROXY_READY).name).touch()  # the container's gate opens: the plugin starts
                return await self._attend(client, container, invocation, plan, stream, early, handle, log_send)

    async def _attend(
        self, client: DockerClient, container: str, invocation: Invocation, plan: Any, stream: trio.SocketStream,
        early: bytes, handle: ProcessHandle, log_send: trio.MemorySendChannel[LogEntry],
    ) -> Outcome:
        """Feed stdin, read the frames, watch the limits, wait for the end (or stop it)."""
        policy = invocation.policy
        assert isinstance(policy, SandboxPolicy)
        emitter = process.LogEmitter(invocation, log_send, self.output_limit)
        watch = _ContainerWatch(client, container, policy, handle.pid)
        # shielded like the process runtime's pumps: a cancelled task still delivers every line
        # it wrote while it was being stopped; the other helpers are stopped by us, so that a
        # cancel reaches only the wait below and comes out plain (not in an ExceptionGroup)
        pump_scope = trio.CancelScope(shield=True)
        helpers = trio.CancelScope(shield=True)
        interrupted: BaseException | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_demux, pump_scope, stream, early, emitter)
            nursery.start_soon(_in_scope, helpers, watch.run, partial(_feed, stream, plan.stdin or b""))
            try:
                answer = await client.request("POST", f"{API}/containers/{container}/wait", timeout=float("inf"))
                handle.exit_code = int(answer.get("StatusCode", -1))
            except BaseException as exc:  # noqa: BLE001 - cancelled or timed out: stop it, then re-raise
                interrupted = exc
                with trio.CancelScope(shield=True):
                    await self._stop(client, container, handle)
            helpers.cancel()
            pump_scope.deadline = trio.current_time() + process.DRAIN_READ_DEADLINE
        with trio.CancelScope(shield=True):
            await emitter.finish()
            oom = False
            try:
                state = (await client.request("GET", f"{API}/containers/{container}/json"))["State"]
                oom = bool(state.get("OOMKilled"))
            except DockerError:
                pass
        if interrupted is not None:
            if isinstance(interrupted, trio.Cancelled):
                await trio.lowlevel.checkpoint()
            raise interrupted
        outcome = process.outcome_of(invocation, plan, handle, list(emitter.stderr_tail), emitter.reported)
        how = enforcement("docker")
        hit = watch.hit or ("memory" if oom else None) or watch.final() or limit_from_exit(outcome, how)
        return limit_outcome(outcome, hit, policy, how)

    async def _stop(self, client: DockerClient, container: str, handle: ProcessHandle) -> None:
        """SIGTERM, the grace period (cut short by a second Ctrl+C), then SIGKILL."""
        handle.killed_by_us = True
        handle.signal_sent = "SIGTERM"
        grace = max(0, int(-(-self.kill_grace // 1)))
        async with trio.open_nursery() as nursery:
            async def forced() -> None:
                if self.force_kill is not None:
                    await self.force_kill.wait()
                    handle.signal_sent, handle.escalation = "SIGKILL", "a second stop signal"
                    await client.request("POST", f"{API}/containers/{container}/kill", ok=(204, 404, 409))

            nursery.start_soon(forced)
            try:
                await client.request(
                    "POST", f"{API}/containers/{container}/stop?t={grace}", ok=(204, 304, 404), timeout=grace + REQUEST_TIMEOUT
                )
                answer = await client.request("POST", f"{API}/containers/{container}/wait", ok=(200, 404))
                handle.exit_code = int((answer or {}).get("StatusCode", -1))
            except DockerError:
                pass
            nursery.cancel_scope.cancel()
        if handle.exit_code is not None and handle.exit_code == 128 + 9 and handle.signal_sent == "SIGTERM":
            handle.signal_sent, handle.escalation = "SIGKILL", f"the {grace}s grace period ran out"


class _ContainerWatch:
    """Reads the container's cgroup counters from the host (when this engine can see them)
    and kills the container once it goes over a limit: a fork bomb held at PidsLimit would
    otherwise spin until the timeout."""

    def __init__(self, client: DockerClient, container: str, policy: SandboxPolicy, pid: int) -> None:
        self.client, self.container, self.policy = client, container, policy
        self.group = existing_group(pid) if pid else None
        self.hit: str | None = None

    def final(self) -> str | None:
        if self.group is None:
            return None
        return over_limit(self.group.usage(), None, False)

    async def run(self) -> None:
        if self.group is None:
            return
        while self.hit is None:
            await trio.sleep(WATCH_INTERVAL)
            self.hit = over_limit(self.group.usage(), None, False)
        try:
            await self.client.request("POST", f"{API}/containers/{self.container}/kill", ok=(204, 404, 409))
        except DockerError:
            pass


async def _demux(scope: trio.CancelScope, stream: trio.SocketStream, early: bytes, emitter: process.LogEmitter) -> None:
    with scope:
        await _demux_frames(stream, early, emitter)


async def _demux_frames(stream: trio.SocketStream, early: bytes, emitter: process.LogEmitter) -> None:
    """Docker's multiplexed frames (8-byte header: stream, 0, 0, 0, big-endian size) → lines.

    A frame's payload goes to its stream's splitter as it arrives, so memory stays bounded
    whatever size a header announces."""
    splitters = {
        1: LineSplitter(MAX_LINE_BYTES, process.MAX_DIRECTIVE_BYTES, emitter.mask_cut),
        2: LineSplitter(MAX_LINE_BYTES, mask_cut=emitter.mask_cut),
    }
    names = {1: "stdout", 2: "stderr"}
    buffer = bytearray(early)
    kind, remaining = 0, 0
    while True:
        while buffer:
            if remaining == 0:
                if len(buffer) < 8:
                    break
                kind, remaining = buffer[0], int.from_bytes(buffer[4:8], "big")
                del buffer[:8]
                continue
            payload = bytes(buffer[:remaining])
            del buffer[: len(payload)]
            remaining -= len(payload)
            if kind in splitters:
                lines = splitters[kind].feed(payload)
                if lines:
                    await emitter.lines(names[kind], lines)  # type: ignore[arg-type]
        try:
            chunk = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            chunk = b""
        if not chunk:
            break
        buffer += chunk
    for kind, splitter in splitters.items():
        last = splitter.close()
        if last:
            await emitter.lines(names[kind], last)  # type: ignore[arg-type]


async def _in_scope(scope: trio.CancelScope, *functions: Any) -> None:
    """Run the functions side by side under ``scope`` (which their owner cancels)."""
    with scope:
        async with trio.open_nursery() as nursery:
            for function in functions:
                nursery.start_soon(function)


async def _feed(stream: trio.SocketStream, payload: bytes) -> None:
    """The input message on the container's stdin, then EOF (a plugin that reads none is fine)."""
    try:
        if payload:
            await stream.send_all(payload)
        await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


def _note(invocation: Invocation, level: LogLevel, message: str) -> LogEntry:
    return LogEntry(invocation.execution_id, invocation.task_id, level, "sandbox", message, {"attempt": invocation.attempt})

