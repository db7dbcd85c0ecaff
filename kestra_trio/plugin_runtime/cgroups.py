"""Per-task control groups: memory, process and CPU limits for the whole sandbox, and the
counters that tell which limit a task went over.

cgroup v2 is used where the engine may create child groups with the controllers enabled
(a delegated subtree); otherwise the v1 hierarchies memory, pids and cpuacct where they are
writable (root on a hybrid host). Where neither works, the sandbox falls back to rlimits
(see bwrap.py). Files are read and written synchronously: each is a few bytes in a pseudo
file system that never blocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kestra_trio.plugin_runtime.reaper import pid_alive

#: v1 hierarchies used, by controller
V1_CONTROLLERS = ("memory", "pids", "cpuacct")
V2_CONTROLLERS = ("memory", "pids", "cpu")


@dataclass(frozen=True)
class CgroupSupport:
    """Where this engine may create per-task groups."""

    version: int  # 1 or 2
    #: v2: {"": parent}; v1: {controller: parent} for each usable controller
    parents: dict[str, Path]

    def mechanism(self, controller: str) -> str | None:
        """How a limit is enforced, for docs and inspect: `cgroup v2 memory.max`…; None: not here."""
        files = {
            1: {"memory": "memory.limit_in_bytes", "pids": "pids.max", "cpuacct": "cpuacct.usage"},
            2: {"memory": "memory.max", "pids": "pids.max", "cpu": "cpu.stat"},
        }[self.version]
        key = {"cpu": "cpuacct" if self.version == 1 else "cpu"}.get(controller, controller)
        if self.version == 1 and key not in self.parents:
            return None
        if self.version == 2 and key not in self.v2_controllers:
            return None
        return f"cgroup v{self.version} {files[key]}"

    @property
    def v2_controllers(self) -> frozenset[str]:
        if self.version != 2:
            return frozenset()
        try:
            text = (self.parents[""] / "cgroup.subtree_control").read_text()
        except OSError:
            return frozenset()
        return frozenset(text.split())


def _mounts(mountinfo: str) -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) for each cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].replace("\\040", " ")
        found.append((point, tail[0], set(tail[2].split(","))))
    return found


def detect(proc: Path = Path("/proc/self"), *, probe: bool = True, member: Path | None = None) -> CgroupSupport | None:
    """The usable cgroup setup of this process, or None (then rlimits are used).

    `proc` is replaceable so that tests can describe a host in a temporary folder; `member`
    (a /proc/PID folder) reads the groups of another process (a container) with this
    process's mounts: then `parents` are that process's own groups.
    """
    try:
        mountinfo = (proc / "mountinfo").read_text()
        membership = ((member or proc) / "cgroup").read_text()
    except OSError:
        return None
    paths: dict[str, str] = {}
    for line in membership.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(",") if parts[1] else [""]:
                paths[name] = parts[2]
    mounts = _mounts(mountinfo)
    root = None if proc == Path("/proc/self") else proc.parent.parent
    for point, fstype, _ in mounts:
        if fstype == "cgroup2" and "" in paths:
            parent = _under(point, paths[""], root)
            support = _v2(parent, probe)
            if support is not None:
                return support
    parents: dict[str, Path] = {}
    for point, fstype, options in mounts:
        if fstype != "cgroup":
            continue
        for controller in V1_CONTROLLERS:
            if controller in options and controller in paths and controller not in parents:
                parent = _under(point, paths[controller], root)
                if not probe or _can_create(parent):
                    parents[controller] = parent
    return CgroupSupport(1, parents) if parents else None


def _under(point: str, path: str, root: Path | None) -> Path:
    base = Path(point) if root is None else root / point.lstrip("/")
    return base / path.lstrip("/")


def _v2(parent: Path, probe: bool) -> CgroupSupport | None:
    try:
        available = set((parent / "cgroup.controllers").read_text().split())
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError:
        return None
    wanted = [c for c in V2_CONTROLLERS if c in available]
    if "memory" not in wanted or "pids" not in wanted:
        return None
    missing = [c for c in wanted if c not in enabled]
    if missing:
        try:  # fails (EBUSY) when the parent holds processes and is not the root: not delegated
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
        except OSError:
            return None
    if probe and not _can_create(parent):
        return None
    return CgroupSupport(2, {"": parent})


def _can_create(parent: Path) -> bool:
    probe = parent / f"kestra-trio-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        probe.rmdir()
    except OSError:
        pass
    return True


@dataclass
class Usage:
    oom_kills: int = 0
    pids_refused: int = 0
    cpu_seconds: float = 0.0


def over_limit(usage: Usage, cpu_limit: float | None, cpu_counted: bool) -> str | None:
    """The limit a group's counters say it went over: a process killed by the OOM killer,
    a fork refused at pids.max, or CPU time used past the task's cpu_seconds."""
    if usage.oom_kills:
        return "memory"
    if usage.pids_refused:
        return "processes"
    if cpu_counted and cpu_limit is not None and usage.cpu_seconds >= cpu_limit:
        return "cpu_seconds"
    return None


def existing_group(pid: int) -> TaskCgroup | None:
    """The groups process ``pid`` is in (a container's), for reading its counters."""
    support = detect(member=Path(f"/proc/{pid}"), probe=False)
    if support is None:
        return None
    return TaskCgroup(support, "", dict(support.parents))


@dataclass
class TaskCgroup:
    """One task's group (one folder per v1 hierarchy). Create, have the sandbox's first
    process join it before it runs anything (procs_files), read counters, remove."""

    support: CgroupSupport
    name: str
    dirs: dict[str, Path] = field(default_factory=dict)
    #: counters when the current task started (a pooled group keeps counting across tasks)
    baseline: Usage = field(default_factory=lambda: Usage())
    limits: tuple[int | None, int | None] | None = None

    @classmethod
    def create(
        cls, support: CgroupSupport, label: str, *, memory: int | None, processes: int | None, cpu: bool = True
    ) -> TaskCgroup:
        """Raises OSError when a folder or limit cannot be written (the caller fails the task).

        ``cpu=False`` skips the v1 cpuacct hierarchy (nothing to count): moving a process
        into each v1 hierarchy is one more write, and the first costs an RCU grace period."""
        group = cls(support, f"kestra-trio-{label}")
        try:
            for key, parent in support.parents.items():
                if key == "cpuacct" and not cpu:
                    continue
                path = parent / group.name
                path.mkdir()
                group.dirs[key] = path
            group.set_limits(memory, processes)
        except OSError:
            group.remove()
            raise
        return group

    def set_limits(self, memory: int | None, processes: int | None) -> None:
        if self.limits == (memory, processes):
            return
        self.limits = (memory, processes)
        if self.support.version == 2:
            path = self.dirs[""]
            if memory is not None:
                _write(path / "memory.max", memory)
                _write(path / "memory.swap.max", 0, optional=True)
            if processes is not None:
                _write(path / "pids.max", processes)
            return
        if memory is not None and "memory" in self.dirs:
            _write(self.dirs["memory"] / "memory.limit_in_bytes", memory)
            _write(self.dirs["memory"] / "memory.memsw.limit_in_bytes", memory, optional=True)
        if processes is not None and "pids" in self.dirs:
            _write(self.dirs["pids"] / "pids.max", processes)

    def procs_files(self) -> list[Path]:
        """Where a process writes its pid to join this group (one file per v1 hierarchy)."""
        return [path / "cgroup.procs" for path in self.dirs.values()]

    def usage(self) -> Usage:
        """The counters since this task started."""
        total = self.total_usage()
        return Usage(
            total.oom_kills - self.baseline.oom_kills,
            total.pids_refused - self.baseline.pids_refused,
            total.cpu_seconds - self.baseline.cpu_seconds,
        )

    def empty(self) -> bool:
        for path in self.dirs.values():
            try:
                if (path / "cgroup.procs").read_text().strip():
                    return False
            except OSError:
                return False
        return True

    def total_usage(self) -> Usage:
        usage = Usage()
        if self.support.version == 2:
            path = self.dirs.get("")
            if path is not None:
                usage.oom_kills = _keyed(path / "memory.events", "oom_kill")
                usage.pids_refused = _keyed(path / "pids.events", "max")
                usage.cpu_seconds = _keyed(path / "cpu.stat", "usage_usec") / 1e6
            return usage
        if "memory" in self.dirs:
            usage.oom_kills = _keyed(self.dirs["memory"] / "memory.oom_control", "oom_kill")
        if "pids" in self.dirs:
            usage.pids_refused = _keyed(self.dirs["pids"] / "pids.events", "max")
        if "cpuacct" in self.dirs:
            try:
                usage.cpu_seconds = int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
            except (OSError, ValueError):
                pass
        return usage

    def remove(self) -> bool:
        """Remove every folder; False if one still holds processes (EBUSY)."""
        done = True
        for key, path in list(self.dirs.items()):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                done = False
                continue
            del self.dirs[key]
        return done


def _write(path: Path, value: int, *, optional: bool = False) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        if optional:
            return
        raise
    try:
        os.write(fd, str(value).encode())
    except OSError:
        if not optional:
            raise
    finally:
        os.close(fd)


def _keyed(path: Path, key: str) -> int:
    """The number after `key` in a flat keyed file (`oom_kill 1`), 0 when absent."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value.strip())
            except ValueError:
                return 0
    return 0


class CgroupPool:
    """Task groups of one engine, reused: creating and removing a memory cgroup costs more
    than the rest of a sandbox's start (rmdir waits for the kernel to take it offline), and
    a reused group only needs its limits checked and its counters' baseline read.

    Groups are named ``kestra-trio-<engine pid>-<n>``; the first pool of a process removes
    the groups of engines that are gone (killed before they could)."""

    def __init__(self, support: CgroupSupport) -> None:
        self.support = support
        self._free: dict[bool, list[TaskCgroup]] = {True: [], False: []}
        self._made = 0
        self._remove_stale()

    def acquire(self, *, memory: int | None, processes: int | None, cpu: bool) -> TaskCgroup:
        free = self._free[cpu]
        if free:
            group = free.pop()
            group.set_limits(memory, processes)
        else:
            self._made += 1
            group = TaskCgroup.create(self.support, f"{os.getpid()}-{self._made}", memory=memory, processes=processes, cpu=cpu)
        group.baseline = group.total_usage()
        return group

    def release(self, group: TaskCgroup) -> bool:
        """Back to the pool when no process is left in it; False: the caller removes it."""
        if not group.empty():
            return False
        self._free["cpuacct" in group.dirs or self.support.version == 2].append(group)
        return True

    def close(self) -> None:
        for groups in self._free.values():
            while groups:
                groups.pop().remove()

    def _remove_stale(self) -> None:
        for parent in self.support.parents.values():
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            for name in names:
                parts = name.split("-")
                if name.startswith("kestra-trio-") and len(parts) >= 4 and parts[2].isdigit() and not pid_alive(int(parts[2])):
                    try:
                        (parent / name).rmdir()
                    except OSError:
                        pass


