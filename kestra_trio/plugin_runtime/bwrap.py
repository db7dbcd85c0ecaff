"""Restricted mode with bubblewrap: the process runtime's child, inside namespaces.

Each attempt gets its own user, pid, network, ipc, uts and cgroup namespaces (uid/gid 65534
inside, no capabilities, no nested user namespaces), a root file system with only the
system's read-only folders, a minimal /etc, the plugin's own folder (and the engine's Python
when the plugin runs it), a private /tmp, a fresh work folder (read-write, removed
afterwards) and exactly the granted paths. bubblewrap starts inside the task's cgroup (a
shell joins it, then execs bwrap) and waits on a pipe (`--block-fd`) until the engine has
set the rlimits of its first process, so no plugin code runs unlimited.

No orphans: bubblewrap is the leader of the task's process group (the engine's watchdog
knows it); `--die-with-parent` and the pid namespace take every process of the sandbox with
it, setsid'd or not.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import resource
import shutil
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio

from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.plugin_runtime import process
from kestra_trio.plugin_runtime.cgroups import CgroupPool, TaskCgroup, over_limit
from kestra_trio.plugin_runtime.process import Confinement, RuntimeSettings
from kestra_trio.plugin_runtime.reaper import pid_alive
from kestra_trio.plugin_runtime.proxy import FORWARDER_CODE, PROXY_PORT, AllowListProxy, open_unix_listener, parse_rules
from kestra_trio.plugin_runtime.runtime import Invocation, Outcome, ProcessHandle
from kestra_trio.plugin_runtime.sandbox import (
    SANDBOX_UID,
    SandboxPolicy,
    _cgroups,
    bwrap_path,
    enforcement,
    limit_from_exit,
    limit_outcome,
)
from kestra_trio.sdk import protocol
from kestra_trio.state.states import Reason

#: inside the sandbox: the engine's control folder (result file, proxy socket) and the SDK
CONTROL_DIR = "/run/kestra-trio"
SDK_DIR = "/opt/kestra-trio/lib"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: the few /etc entries programs need to start (dynamic linker, time zone, TLS roots, alternatives)
#: copied (files, symlinks, folders of them) into the sandbox's own /etc: what programs need
#: to start (dynamic linker, time zone, name service, Debian's alternatives), nothing secret
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "nsswitch.conf", "host.conf")
#: bound read-only on top: TLS roots (not /etc/ssl/private)
ETC_BINDS = ("/etc/ssl/certs",)
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
INFO_TIMEOUT = 10.0
WATCH_INTERVAL = 0.1
_SDK_PACKAGE = Path(__file__).resolve().parents[1]  # the kestra_trio package folder

RefusalRecorder = Callable[[Invocation, str, str, str], Awaitable[None]]  # (invocation, kind, target, detail)


_PREPARED: dict[Path, Path] = {}  # sandbox base -> its /etc folder, once per engine process


def _sandbox_base() -> tuple[Path, Path]:
    """A private folder per user for the attempts' folders (0700, ours, not a symlink), and
    the sandbox's /etc in it. The first call of a process also removes the folders of
    engines that died before they could (kill -9)."""
    base = Path(os.environ.get(SANDBOX_DIR_ENV) or _scratch_root() / f"kestra-trio-{os.getuid()}")
    if base in _PREPARED:
        return base, _PREPARED[base]
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OSError(f"{base} is not a folder owned by this user; set KESTRA_TRIO_SANDBOX_DIR")
    os.chmod(base, 0o700)
    for entry in os.listdir(base):
        owner = entry.partition("-")[0]
        if owner.isdigit() and not pid_alive(int(owner)):
            shutil.rmtree(base / entry, ignore_errors=True)
    _PREPARED[base] = _etc_files(base)
    return base, _PREPARED[base]


SANDBOX_DIR_ENV = "KESTRA_TRIO_SANDBOX_DIR"


@functools.cache
def _scratch_root() -> Path:
    """/dev/shm when it is a tmpfs (attempt folders are made and removed for every task: on
    a busy disk each mkdir/rmdir waits for the journal, and they run on the event loop),
    else the system's temp folder. A task's files there count against its memory limit."""
    try:
        with open("/proc/self/mounts") as mounts:
            tmpfs = any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in mounts if line.strip())
    except OSError:
        tmpfs = False
    if tmpfs and os.access("/dev/shm", os.W_OK | os.X_OK):
        return Path("/dev/shm")
    return Path(tempfile.gettempdir())




def _etc_files(base: Path) -> Path:
    """The sandbox's /etc, one folder bound at once (a bind per file costs bubblewrap a scan
    of the mount table each): ETC_ENTRIES copied when world-readable, and passwd/group/hosts
    naming only what exists inside. Built once per content, shared by attempts and engines."""
    files: dict[str, bytes | str] = {
        "passwd": f"root:x:0:0:root:/root:/bin/sh\nnobody:x:{SANDBOX_UID}:{SANDBOX_UID}:nobody:/tmp:/bin/sh\n".encode(),
        "group": f"root:x:0:\nnogroup:x:{SANDBOX_UID}:\n".encode(),
        "hosts": b"127.0.0.1 localhost\n::1 localhost\n",
    }
    for name in ETC_ENTRIES:
        _collect(Path("/etc") / name, name, files)
    digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]
    etc = base / f"etc-{digest}"
    if etc.is_dir():
        return etc
    building = Path(tempfile.mkdtemp(prefix="etc-building-", dir=base))
    for name in ETC_BINDS:
        (building / Path(name).relative_to("/etc")).mkdir(parents=True, exist_ok=True)  # mount points
    for name, content in sorted(files.items()):
        target = building / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.symlink_to(content)
        else:
            target.write_bytes(content)
            target.chmod(0o644)
    building.chmod(0o755)
    try:
        building.rename(etc)  # atomic: another engine may have built the same one meanwhile
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return etc


def _collect(path: Path, name: str, files: dict[str, bytes | str], depth: int = 0) -> None:
    """A file's bytes, a symlink's target (str), a folder's entries; only what anyone may read."""
    try:
        info = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode):
        files[name] = os.readlink(path)
    elif stat.S_ISREG(info.st_mode) and info.st_mode & 0o004 and info.st_size <= 4 * 1024 * 1024:
        try:
            files[name] = path.read_bytes()
        except OSError:
            pass
    elif stat.S_ISDIR(info.st_mode) and info.st_mode & 0o005 == 0o005 and depth < 2:
        for entry in sorted(os.listdir(path)):
            _collect(path / entry, f"{name}/{entry}", files, depth + 1)


@functools.cache
def _python_roots() -> tuple[str, ...]:
    """The folders the plugins' Python needs (interpreter, stdlib, venv), outside /usr."""
    roots = []
    for raw in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        path = os.path.realpath(raw)
        if not any(path == d or path.startswith(d + "/") for d in SYSTEM_DIRS) and path not in roots:
            roots.append(path)
    # a folder inside another is bound with it
    return tuple(p for p in roots if not any(p != q and p.startswith(q + "/") for q in roots))


def bwrap_argv(
    policy: SandboxPolicy,
    *,
    bwrap: str,
    etc: Path,
    work: Path,
    control: Path,
    plugin_dir: Path,
    cwd: Path | None,
    info_fd: int,
    block_fd: int,
    python: bool = True,
) -> list[str]:
    """bubblewrap's options for one attempt (the command follows `--`); ``python``: mount
    the engine's Python and the SDK (only what runs it needs them)."""
    args = [bwrap, *_system_options(str(etc)), "--size", str(policy.memory), "--tmpfs", "/tmp"]
    if python:  # the plugin (or the proxy's forwarder) runs the engine's Python
        for root in _python_roots():
            args += ["--ro-bind", root, root]
        args += ["--ro-bind", str(_SDK_PACKAGE), f"{SDK_DIR}/kestra_trio"]
    args += ["--ro-bind", str(plugin_dir), str(plugin_dir)]
    for path in policy.read:
        args += ["--ro-bind", path, path]
    for path in policy.write:
        args += ["--bind", path, path]
    args += ["--bind", str(work), str(work), "--bind", str(control), CONTROL_DIR]
    args += ["--chdir", str(cwd or work), "--info-fd", str(info_fd), "--block-fd", str(block_fd), "--"]
    return args


@functools.cache
def _system_options(etc: str) -> tuple[str, ...]:
    """The options every sandbox of this engine shares (namespaces, system folders, /etc)."""
    args = [
        "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--disable-userns", "--die-with-parent", "--hostname", "kestra-trio", "--cap-drop", "ALL",
    ]
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    args += ["--ro-bind", etc, "/etc"]
    for name in ETC_BINDS:
        if os.path.isdir(name):
            args += ["--ro-bind", name, name]
    return (*args, "--proc", "/proc", "--dev", "/dev")


def sandbox_env(policy: SandboxPolicy, work: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """What a sandboxed plugin inherits before the protocol variables: fixed defaults and the
    names in permissions.env (when the engine has them)."""
    env = {"PATH": SANDBOX_PATH, "HOME": str(work), "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    env.update({name: environ[name] for name in policy.env if name in environ})
    return env


@dataclass
class _Limits(Confinement):
    """Sets up one sandbox right after spawn; watches its cgroup; names the limit it hit."""

    policy: SandboxPolicy
    info_read: int
    block_write: int
    how: dict[str, str]
    cgroup: TaskCgroup | None
    child_fds: list[int] = field(default_factory=list)  # the ends bubblewrap inherits
    hit: str | None = None
    reaps_leftovers = True  # the pid namespace dies with bubblewrap

    def close(self) -> None:
        """Close our ends of the control pipes (once: a closed number may be reused at once)."""
        for name in ("info_read", "block_write"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)
        self.close_child_ends()

    def close_child_ends(self) -> None:
        while self.child_fds:
            os.close(self.child_fds.pop())

    async def started(self, proc: trio.Process, handle: ProcessHandle) -> str | None:
        self.close_child_ends()  # else a bubblewrap that fails early never gives EOF
        info = await self._read_info(proc)
        if isinstance(info, str):
            return info
        child = int(info["child-pid"])
        handle.spare = (proc.pid, child)  # SIGTERM goes to the plugin, not to bubblewrap
        try:
            self._rlimits(child)
            os.write(self.block_write, b"1")
        except OSError as exc:
            return f"cannot set the sandbox's limits: {exc.strerror or exc}"
        finally:
            self.close()
        return None

    async def _read_info(self, proc: trio.Process) -> dict[str, Any] | str:
        fd, self.info_read = self.info_read, -1
        stream = trio.lowlevel.FdStream(fd)  # owns and closes fd
        data = b""
        with trio.move_on_after(INFO_TIMEOUT):
            async with stream:
                while True:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
                    try:
                        return json.loads(data)  # type: ignore[no-any-return]
                    except ValueError:
                        continue
        detail = ""
        if proc.stderr is not None:
            with trio.move_on_after(1.0):
                detail = (await proc.stderr.receive_some(4096)).decode(errors="replace").strip()
        return "bubblewrap could not set up the sandbox" + (f": {detail.splitlines()[-1]}" if detail else "")

    def _rlimits(self, pid: int) -> None:
        policy = self.policy
        limits = [(resource.RLIMIT_FSIZE, policy.file_size), (resource.RLIMIT_CORE, 0)]
        if policy.cpu_seconds is not None:
            seconds = max(1, int(-(-policy.cpu_seconds // 1)))
            limits.append((resource.RLIMIT_CPU, (seconds, seconds + 1)))  # type: ignore[arg-type]
        if not self.how["memory"].startswith("cgroup"):
            limits.append((resource.RLIMIT_AS, policy.memory))
        if not self.how["processes"].startswith("cgroup"):
            limits.append((resource.RLIMIT_NPROC, policy.processes))
        for kind, value in limits:
            soft, hard = value if isinstance(value, tuple) else (value, value)
            resource.prlimit(pid, kind, (soft, hard))

    async def watch(self, kill: Any) -> None:
        if self.cgroup is None:
            await trio.sleep_forever()
        while True:
            await trio.sleep(WATCH_INTERVAL)
            self.hit = self._over()
            if self.hit is not None:
                kill()
                return

    def _over(self) -> str | None:
        if self.cgroup is None:
            return None
        return over_limit(self.cgroup.usage(), self.policy.cpu_seconds, self.how["cpu_seconds"].startswith("cgroup"))

    def judge(self, outcome: Outcome, handle: ProcessHandle) -> Outcome:
        hit = self.hit or self._over() or limit_from_exit(outcome, self.how)
        return limit_outcome(outcome, hit, self.policy, self.how)


@dataclass
class BwrapRuntime(RuntimeSettings):
    """The default restricted runtime. ``refused`` records what the sandbox refused."""

    refused: RefusalRecorder | None = None
    environ: Any = None  # the engine's environment, for permissions.env (default os.environ)

    async def run_action(
        self,
        invocation: Invocation,
        *,
        log_send: trio.MemorySendChannel[LogEntry],
        task_status: trio.TaskStatus[ProcessHandle] = trio.TASK_STATUS_IGNORED,
    ) -> Outcome:
        policy = invocation.policy
        assert isinstance(policy, SandboxPolicy)
        bwrap = bwrap_path()
        if bwrap is None:  # checked at start; removed while running
            return Outcome.failure(Reason.SANDBOX_FAILED, "restricted mode needs bubblewrap (apt-get install bubblewrap)", type="SandboxFailed")
        try:
            return await self._run_in_folders(invocation, policy, bwrap, log_send, task_status)
        except OSError as exc:  # the sandbox folders or the proxy socket could not be made
            return Outcome.failure(Reason.SANDBOX_FAILED, f"cannot prepare the sandbox: {exc}", type="SandboxFailed")

    async def _run_in_folders(
        self, invocation: Invocation, policy: SandboxPolicy, bwrap: str, log_send: trio.MemorySendChannel[LogEntry],
        task_status: Any,
    ) -> Outcome:
        async with _attempt_folders(invocation) as (work, control, etc):
            invocation = replace(invocation, workdir=work)
            plan = sandboxed_plan(invocation, policy, work, control, self.environ)
            if isinstance(plan, Outcome):
                return plan
            if policy.network:
                async with serving_proxy(invocation, policy, control, log_send, self.refused):
                    outcome = await self._run(
                        invocation, forwarded(plan), policy, bwrap, etc, work, control, log_send, task_status
                    )
            else:
                outcome = await self._run(invocation, plan, policy, bwrap, etc, work, control, log_send, task_status)
            await record_limit(self.refused, invocation, outcome)
            return outcome

    async def _run(
        self, invocation: Invocation, plan: Any, policy: SandboxPolicy, bwrap: str, etc: Path, work: Path,
        control: Path, log_send: trio.MemorySendChannel[LogEntry], task_status: Any,
    ) -> Outcome:
        pool = _cgroup_pool()
        group = None
        if pool is not None:
            try:
                group = pool.acquire(memory=policy.memory, processes=policy.processes, cpu=policy.cpu_seconds is not None)
            except OSError as exc:
                return Outcome.failure(Reason.SANDBOX_FAILED, f"cannot make the task's cgroup: {exc}", type="SandboxFailed")
        info_read, info_write = os.pipe()
        block_read, block_write = os.pipe()
        os.set_inheritable(info_write, True)
        os.set_inheritable(block_read, True)
        limits = _Limits(policy, info_read, block_write, enforcement("bubblewrap"), group, [info_write, block_read])
        argv = bwrap_argv(
            policy, bwrap=bwrap, etc=etc, work=work, control=control, plugin_dir=invocation.manifest.folder,
            cwd=plan.cwd, info_fd=info_write, block_fd=block_read, python=bool(plan.argv) and plan.argv[0] == sys.executable,
        )
        sandboxed = replace(plan, argv=_joining(group) + argv + plan.argv, cwd=Path("/"), pass_fds=(info_write, block_read))
        try:
            return await process.run_plan(
                invocation, sandboxed, log_send=log_send, reaper=self.reaper, kill_grace=self.kill_grace,
                force_kill=self.force_kill, output_limit=self.output_limit, task_status=task_status, confinement=limits,
            )
        finally:
            limits.close()
            if group is not None and pool is not None and not pool.release(group):
                with trio.CancelScope(shield=True):
                    await _remove_cgroup(group)



def forwarded(plan: Any) -> Any:
    """The plugin behind the in-sandbox forwarder, with the proxy in its environment."""
    argv = [sys.executable, "-S", "-c", FORWARDER_CODE, f"{CONTROL_DIR}/proxy.sock", str(PROXY_PORT), *plan.argv]
    return replace(plan, argv=argv, env={**plan.env, **proxy_env(f"http://127.0.0.1:{PROXY_PORT}")})


@asynccontextmanager
async def serving_proxy(
    invocation: Invocation, policy: SandboxPolicy, control: Path, log_send: trio.MemorySendChannel[LogEntry],
    refused: RefusalRecorder | None, listener: trio.abc.Listener[Any] | None = None,
) -> AsyncIterator[None]:
    """The allow-list proxy for one attempt, on `control/proxy.sock` (or ``listener``), for
    the duration of the block. It runs shielded and is stopped by us: a cancel of the caller
    reaches the block alone, and comes out as a plain Cancelled, not in an ExceptionGroup."""
    if listener is None:
        listener = await open_unix_listener(str(control / "proxy.sock"))
    proxy = AllowListProxy(parse_rules(policy.network), refusal_reporter(invocation, log_send, refused))
    scope = trio.CancelScope(shield=True)
    interrupted: BaseException | None = None

    async def serve() -> None:
        with scope:
            await proxy.serve(listener)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        try:
            yield
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the proxy stopped
            interrupted = exc
        scope.cancel()
    if interrupted is not None:
        if isinstance(interrupted, trio.Cancelled):
            await trio.lowlevel.checkpoint()  # the caller's scope is cancelled: a fresh Cancelled
        raise interrupted


def sandboxed_plan(
    invocation: Invocation, policy: SandboxPolicy, work: Path, control: Path, environ: Mapping[str, str] | None
) -> Any:
    """The process runtime's plan, from the sandbox's own environment, with the result file
    in the control folder (as the plugin sees it) and the SDK where the sandbox mounts it."""
    env = sandbox_env(policy, work, os.environ if environ is None else environ)
    plan = process.make_plan(invocation, result_dir=control, inherited=env)
    if isinstance(plan, Outcome):
        return plan
    if plan.result_path is not None:
        plan.env[protocol.RESULT_FILE_ENV] = f"{CONTROL_DIR}/{plan.result_path.name}"
    if plan.argv and plan.argv[0] == sys.executable:
        plan.env["PYTHONPATH"] = SDK_DIR
    return plan


async def record_limit(refused: RefusalRecorder | None, invocation: Invocation, outcome: Outcome) -> None:
    """A limit the task went over is a refusal `inspect` lists."""
    if outcome.reason_code == Reason.RESOURCE_LIMIT and refused is not None:
        error = outcome.error or {}
        await refused(invocation, "resource", str(error.get("limit")), str(error.get("message")))


def proxy_env(url: str) -> dict[str, str]:
    return {
        "HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
        "NO_PROXY": "", "no_proxy": "",
    }


def refusal_reporter(
    invocation: Invocation, log_send: trio.MemorySendChannel[LogEntry], refused: RefusalRecorder | None
) -> Callable[[str, str], Awaitable[None]]:
    """A refused host becomes a WARN line naming it, and a recorded refusal."""

    async def report(target: str, detail: str) -> None:
        await log_send.send(
            LogEntry(
                invocation.execution_id, invocation.task_id, LogLevel.WARN, "sandbox",
                f"network access refused: {detail}",
                {"refusal": "network", "target": target, "attempt": invocation.attempt},
            )
        )
        if refused is not None:
            await refused(invocation, "network", target, detail)

    return report


#: bubblewrap starts inside the task's cgroup: a shell joins it, then execs bubblewrap. Moving
#: a process between v1 groups waits for an RCU grace period (milliseconds): this way the
#: wait is the child's, never the engine's event loop's
JOIN_CGROUP = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


def _joining(group: TaskCgroup | None) -> list[str]:
    if group is None:
        return []
    return ["/bin/sh", "-c", JOIN_CGROUP, "sh", *map(str, group.procs_files()), "--"]


@functools.cache
def _cgroup_pool() -> CgroupPool | None:
    """This engine's task groups (None: no usable cgroup here), removed when it exits."""
    support = _cgroups()
    if support is None:
        return None
    pool = CgroupPool(support)
    atexit.register(pool.close)
    return pool


async def _remove_cgroup(group: TaskCgroup) -> None:
    """The pid namespace is torn down asynchronously: wait (bounded) until the group is empty."""
    with trio.move_on_after(2.0):
        while not group.remove():
            await trio.sleep(0.01)


@asynccontextmanager
async def _attempt_folders(invocation: Invocation) -> AsyncIterator[tuple[Path, Path, Path]]:
    """A fresh work folder and control folder for one attempt, removed afterwards whatever
    the plugin left in them (rmtree never follows a planted symlink)."""
    base, etc = _sandbox_base()
    # short: the proxy's unix socket lives in here, and a socket path has at most 107 bytes;
    # the engine's pid first, so that a later engine can clean up after a killed one
    root = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{invocation.execution_id[:8]}-{invocation.attempt}-", dir=base))
    work, control = root / "work", root / "control"
    work.mkdir(mode=0o700)
    control.mkdir(mode=0o700)
    try:
        yield work, control, etc
    finally:
        shutil.rmtree(root, ignore_errors=True)


__all__ = [
    "BwrapRuntime", "bwrap_argv", "forwarded", "proxy_env", "record_limit", "refusal_reporter", "sandbox_env",
    "sandboxed_plan", "serving_proxy",
]
