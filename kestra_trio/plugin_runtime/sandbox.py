"""Restricted mode: what a sandboxed task may touch (its policy), how each limit is enforced
on this host, and the checks that make a workflow fail at start instead of running
unsandboxed.

The runtimes themselves are bwrap.py (bubblewrap, the default) and docker.py; both take a
:class:`SandboxPolicy` and share process.py's capture, result channel and outcome.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kestra_trio.errors import SandboxUnavailable
from kestra_trio.model.sizes import format_size
from kestra_trio.model.workflow import TaskSpec, Workflow
from kestra_trio.plugin_runtime.runtime import Outcome
from kestra_trio.state.states import Reason

DEFAULT_MEMORY = 1024**3
DEFAULT_PROCESSES = 256
DEFAULT_FILE_SIZE = 1024**3
#: uid and gid a plugin has inside its sandbox (nobody)
SANDBOX_UID = 65534
BWRAP_MISSING = "restricted mode needs bubblewrap (apt-get install bubblewrap)"


@dataclass(frozen=True)
class SandboxPolicy:
    """Everything one restricted task is allowed, with defaults filled in."""

    kind: str  # bubblewrap | docker
    image: str | None
    network: tuple[str, ...]
    read: tuple[str, ...]
    write: tuple[str, ...]
    env: tuple[str, ...]
    memory: int
    processes: int
    file_size: int
    cpu_seconds: float | None

    @classmethod
    def for_task(cls, workflow: Workflow, spec: TaskSpec) -> SandboxPolicy | None:
        """None for a trusted workflow (plain child processes)."""
        if workflow.security != "restricted":
            return None
        kind, image = workflow.sandbox_of(spec)
        perms = workflow.permissions
        res = perms.resources
        return cls(
            kind=kind,
            image=image,
            network=perms.network,
            read=tuple(os.path.normpath(p) for p in perms.filesystem_read),
            write=tuple(os.path.normpath(p) for p in perms.filesystem_write),
            env=perms.env,
            memory=res.memory or DEFAULT_MEMORY,
            processes=res.processes or DEFAULT_PROCESSES,
            file_size=res.file_size or DEFAULT_FILE_SIZE,
            cpu_seconds=res.cpu_seconds,
        )

    def limits(self) -> dict[str, Any]:
        return {
            "memory": self.memory, "processes": self.processes, "file_size": self.file_size,
            "cpu_seconds": self.cpu_seconds,
        }

    def describe(self) -> dict[str, Any]:
        """What is stored with the task run and shown by inspect (enforcement added by the runtime)."""
        return {
            "runtime": self.kind,
            **({"image": self.image} if self.image else {}),
            "network": list(self.network),
            "filesystem": {"read": list(self.read), "write": list(self.write)},
            "env": list(self.env),
            "resources": self.limits(),
            "enforcement": enforcement(self.kind),
        }


#: the exit status bubblewrap and docker report for a child killed by a signal
SIGNAL_BASE = 128


def limit_from_exit(outcome: Outcome, how: dict[str, str]) -> str | None:
    """The limit an ended task went over, when no counter says it: SIGXCPU / SIGXFSZ (the
    rlimits' signals), EFBIG, or an allocation failure under RLIMIT_AS / a refused fork
    under RLIMIT_NPROC, read from the plugin's last stderr lines (strerror's words)."""
    code = outcome.exit_code
    if code in (SIGNAL_BASE + signal.SIGXCPU, -signal.SIGXCPU):
        return "cpu_seconds"
    if code in (SIGNAL_BASE + signal.SIGXFSZ, -signal.SIGXFSZ):
        return "file_size"
    tail = " ".join((outcome.error or {}).get("stderr_tail") or [])
    if "File too large" in tail:  # EFBIG: SIGXFSZ is ignored where the plugin was started
        return "file_size"
    if how.get("memory") == "RLIMIT_AS" and ("MemoryError" in tail or "Cannot allocate memory" in tail):
        return "memory"
    if "Resource temporarily unavailable" in tail and (how.get("processes") == "RLIMIT_NPROC" or "fork" in tail):
        return "processes"  # EAGAIN from fork: the process limit (a container's group may be gone already)
    return None


def limit_outcome(outcome: Outcome, hit: str | None, policy: SandboxPolicy, how: dict[str, str]) -> Outcome:
    """A failed outcome becomes RESOURCE_LIMIT naming the limit it went over."""
    if outcome.ok or hit is None:
        return outcome
    error = outcome.error or {}
    value = policy.limits()[hit]
    return Outcome.failure(
        Reason.RESOURCE_LIMIT,
        f"the task went over its {hit} limit ({format_limit(hit, value)}, enforced by {how[hit]}) and was stopped",
        type="ResourceLimit",
        exit_code=outcome.exit_code,
        signal=error.get("signal"),
        stderr_tail=error.get("stderr_tail"),
        limit=hit,
    )


def format_limit(name: str, value: Any) -> str:
    if value is None:
        return "no limit"
    if name in ("memory", "file_size"):
        return format_size(int(value))
    if name == "cpu_seconds":
        return f"{value:g} s"
    return str(value)


@functools.cache
def _cgroups() -> Any:
    from kestra_trio.plugin_runtime.cgroups import detect

    return detect()


def enforcement(kind: str) -> dict[str, str]:
    """Which mechanism enforces each limit for this runtime on this host."""
    if kind == "docker":
        return {
            "memory": "docker HostConfig.Memory", "processes": "docker HostConfig.PidsLimit",
            "cpu_seconds": "RLIMIT_CPU (container ulimit)", "file_size": "RLIMIT_FSIZE (container ulimit)",
            "network": "no network (NetworkMode none) + the engine's allow-list proxy",
        }
    support = _cgroups()
    memory = support.mechanism("memory") if support else None
    pids = support.mechanism("pids") if support else None
    cpu = support.mechanism("cpu") if support else None
    return {
        "memory": memory or "RLIMIT_AS",
        "processes": pids or "RLIMIT_NPROC",
        "cpu_seconds": f"{cpu} + RLIMIT_CPU" if cpu else "RLIMIT_CPU",
        "file_size": "RLIMIT_FSIZE",
        "network": "own network namespace + the engine's allow-list proxy",
    }


def explain(workflow: Workflow) -> list[str]:
    """What a restricted workflow's tasks will be allowed, for `validate` (one line each)."""
    if workflow.security != "restricted":
        return []
    lines: list[str] = []
    groups: dict[tuple[str, str | None], list[str]] = {}
    for spec in workflow.tasks:
        groups.setdefault(workflow.sandbox_of(spec), []).append(spec.id)
    for (kind, image), tasks in groups.items():
        where = f"docker image {image}" if kind == "docker" else "bubblewrap"
        lines.append(f"sandbox: {where} for {', '.join(tasks)}")
    policy = SandboxPolicy.for_task(workflow, workflow.tasks[0])
    assert policy is not None
    kinds = {kind for kind, _ in groups}
    base = " / ".join(
        ["system folders read-only (bubblewrap)"] * ("bubblewrap" in kinds) + ["the image read-only (docker)"] * ("docker" in kinds)
    )
    lines.append("process: uid 65534 without capabilities, in its own pid namespace: nothing it starts outlives the task")
    lines.append(
        f"filesystem: {base}, a private /tmp, the task's own work folder"
        + (f"; read: {', '.join(policy.read)}" if policy.read else "")
        + (f"; read and write: {', '.join(policy.write)}" if policy.write else "")
        + "; nothing else (not $HOME, not the database)"
    )
    lines.append(
        "network: " + (f"only {', '.join(policy.network)} through the engine's proxy (HTTP CONNECT and plain HTTP; "
                       "a host without :port means ports 80 and 443)" if policy.network else "none")
    )
    lines.append(
        "environment: the engine's protocol variables"
        + (f", {', '.join(policy.env)}" if policy.env else "")
        + " and the secrets each task's inputs name"
    )
    for name, value in policy.limits().items():
        how = " / ".join(dict.fromkeys(enforcement(kind)[name] for kind in sorted(kinds)))
        lines.append(f"{name}: {format_limit(name, value)}" + (f" ({how})" if value is not None else ""))
    return lines


# ---------------------------------------------------------------- failing at start


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


_BWRAP_CHECKED: dict[str, str | None] = {}


async def _bwrap_works(path: str) -> str | None:
    """None when bubblewrap can create its namespaces here, else why not (one line; once per process)."""
    if path in _BWRAP_CHECKED:
        return _BWRAP_CHECKED[path]
    import trio

    try:
        with trio.fail_after(10):
            done = await trio.run_process(
                [path, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "--", "/bin/true"],
                capture_stdout=True, capture_stderr=True, check=False,
            )
    except (OSError, trio.TooSlowError) as exc:
        return f"bubblewrap cannot run: {exc}"
    problem = None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        problem = "bubblewrap cannot create its namespaces here" + (f": {detail[-1]}" if detail else "")
    _BWRAP_CHECKED[path] = problem
    return problem


def database_files(db_path: Path) -> list[Path]:
    """The database and its WAL companions: no grant may expose them to a sandboxed plugin."""
    return [db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_paths(policy: SandboxPolicy, protected: Iterable[Path]) -> None:
    """Every granted path exists, and none exposes a protected file (the database)."""
    for key, paths in (("read", policy.read), ("write", policy.write)):
        for raw in paths:
            path = Path(raw)
            if not path.exists():
                raise SandboxUnavailable(
                    f"permissions.filesystem.{key}: {raw} does not exist (create it, or remove it from the workflow)"
                )
            real = path.resolve()
            for secret in protected:
                if _inside(secret.resolve(), real):
                    raise SandboxUnavailable(
                        f"permissions.filesystem.{key}: {raw} contains the engine's database ({secret}); "
                        "grant a narrower path or keep the database elsewhere (--db)"
                    )


async def check_ready(workflow: Workflow, *, protected: Iterable[Path] = ()) -> None:
    """Raise SandboxUnavailable (exit 2, one line) when a restricted workflow cannot be run
    sandboxed here. Never a fallback to running unsandboxed."""
    if workflow.security != "restricted":
        return
    protected = list(protected)
    kinds: dict[str, set[str]] = {}
    for spec in workflow.tasks:
        kind, image = workflow.sandbox_of(spec)
        kinds.setdefault(kind, set()).add(image or "")
    policy = SandboxPolicy.for_task(workflow, workflow.tasks[0])
    assert policy is not None
    if "bubblewrap" in kinds:
        path = bwrap_path()
        if path is None:
            raise SandboxUnavailable(BWRAP_MISSING)
        problem = await _bwrap_works(path)
        if problem:
            raise SandboxUnavailable(f"restricted mode needs bubblewrap: {problem}")
    check_paths(policy, protected)
    if "docker" in kinds:
        from kestra_trio.plugin_runtime.docker import DockerError, DockerClient

        client = DockerClient.from_environment()
        try:
            await client.ping()
        except DockerError as exc:
            raise SandboxUnavailable(f"sandbox: docker needs a Docker engine: {exc}") from None
        for image in sorted(kinds["docker"]):
            try:
                await client.ensure_image(image)
            except DockerError as exc:
                raise SandboxUnavailable(f"sandbox: docker: {exc}") from None
        if policy.network and os.geteuid() != 0:
            raise SandboxUnavailable(
                "sandbox: docker with permissions.network needs the engine to run as root "
                "(it opens the allow-list proxy inside the container's network namespace)"
            )
