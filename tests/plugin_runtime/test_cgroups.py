"""Which cgroup setup a host offers, read from a described /proc and cgroup tree in a folder
(the logic is file reading; the kernel side runs in the sandbox tests)."""

from __future__ import annotations

from pathlib import Path

from kestra_trio.plugin_runtime.cgroups import TaskCgroup, Usage, detect, over_limit


def host(tmp_path: Path, mountinfo: str, cgroup: str) -> Path:
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "mountinfo").write_text(mountinfo)
    (proc / "cgroup").write_text(cgroup)
    return proc


V1_MOUNTS = """\
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 25 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_MEMBERSHIP = "4:memory:/engine\n8:pids:/\n2:cpu,cpuacct:/\n0::/\n"


def test_v1_hierarchies_where_v2_has_no_controllers(tmp_path: Path) -> None:
    proc = host(tmp_path, V1_MOUNTS, V1_MEMBERSHIP)
    root = tmp_path / "sys" / "fs" / "cgroup"
    (root / "unified").mkdir(parents=True)
    (root / "unified" / "cgroup.controllers").write_text("")
    (root / "unified" / "cgroup.subtree_control").write_text("")
    for path in ("memory/engine", "pids", "cpu,cpuacct"):
        (root / path).mkdir(parents=True)
    support = detect(proc)
    assert support is not None and support.version == 1
    assert support.parents == {
        "memory": root / "memory" / "engine", "pids": root / "pids", "cpuacct": root / "cpu,cpuacct",
    }
    assert support.mechanism("memory") == "cgroup v1 memory.limit_in_bytes"
    assert support.mechanism("cpu") == "cgroup v1 cpuacct.usage"


def test_a_delegated_v2_subtree_is_preferred(tmp_path: Path) -> None:
    proc = host(tmp_path, "40 25 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/user.slice/kt.service\n")
    parent = tmp_path / "sys" / "fs" / "cgroup" / "user.slice" / "kt.service"
    parent.mkdir(parents=True)
    (parent / "cgroup.controllers").write_text("cpu io memory pids\n")
    (parent / "cgroup.subtree_control").write_text("memory pids\n")
    support = detect(proc)
    assert support is not None and (support.version, support.parents) == (2, {"": parent})
    # cpu was available but not yet enabled for children: detect asked for it
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu"


def test_v2_without_memory_or_pids_is_not_used(tmp_path: Path) -> None:
    proc = host(tmp_path, "40 25 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/\n")
    parent = tmp_path / "sys" / "fs" / "cgroup"
    parent.mkdir(parents=True)
    (parent / "cgroup.controllers").write_text("cpu io\n")
    (parent / "cgroup.subtree_control").write_text("")
    assert detect(proc) is None


def test_nothing_writable_means_rlimits(tmp_path: Path) -> None:
    proc = host(tmp_path, V1_MOUNTS, V1_MEMBERSHIP)  # the folders do not exist: mkdir fails
    assert detect(proc) is None


def test_a_task_group_writes_its_limits_and_reads_its_counters(tmp_path: Path) -> None:
    proc = host(tmp_path, V1_MOUNTS, V1_MEMBERSHIP)
    root = tmp_path / "sys" / "fs" / "cgroup"
    for path in ("memory/engine", "pids", "cpu,cpuacct"):
        (root / path).mkdir(parents=True)
    support = detect(proc, probe=False)
    assert support is not None
    # a real cgroup folder comes with its files; here the test provides them
    original_mkdir = Path.mkdir

    def mkdir_with_files(self: Path, *args: object, **kwargs: object) -> None:
        original_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        for name in ("memory.limit_in_bytes", "pids.max", "cgroup.procs", "memory.oom_control", "pids.events", "cpuacct.usage"):
            (self / name).write_text("")

    Path.mkdir = mkdir_with_files  # type: ignore[method-assign]
    try:
        group = TaskCgroup.create(support, "t-1", memory=64 * 2**20, processes=32)
    finally:
        Path.mkdir = original_mkdir  # type: ignore[method-assign]
    assert (group.dirs["memory"] / "memory.limit_in_bytes").read_text() == str(64 * 2**20)
    assert (group.dirs["pids"] / "pids.max").read_text() == "32"
    assert group.procs_files() == [group.dirs[key] / "cgroup.procs" for key in ("memory", "pids", "cpuacct")]
    (group.dirs["memory"] / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (group.dirs["pids"] / "pids.events").write_text("max 3\n")
    (group.dirs["cpuacct"] / "cpuacct.usage").write_text("2500000000\n")
    assert group.usage() == Usage(oom_kills=1, pids_refused=3, cpu_seconds=2.5)


def test_over_limit_names_the_limit() -> None:
    assert over_limit(Usage(oom_kills=1), None, False) == "memory"
    assert over_limit(Usage(pids_refused=1), None, False) == "processes"
    assert over_limit(Usage(cpu_seconds=2.0), 1.5, True) == "cpu_seconds"
    assert over_limit(Usage(cpu_seconds=2.0), 1.5, False) is None
    assert over_limit(Usage(), 1.0, True) is None


def test_the_pool_reuses_empty_groups_and_counts_from_each_tasks_start(tmp_path: Path, monkeypatch) -> None:
    import os

    from kestra_trio.plugin_runtime.cgroups import CgroupPool

    proc = host(tmp_path, V1_MOUNTS, V1_MEMBERSHIP)
    root = tmp_path / "sys" / "fs" / "cgroup"
    for path in ("memory/engine", "pids", "cpu,cpuacct"):
        (root / path).mkdir(parents=True)
    (root / "pids" / "kestra-trio-999999999-1").mkdir()  # an engine that is gone
    (root / "pids" / f"kestra-trio-{os.getpid()}-7").mkdir()  # a live one's (ours)
    support = detect(proc, probe=False)
    assert support is not None
    original_mkdir = Path.mkdir

    def mkdir_with_files(self: Path, *args, **kwargs) -> None:
        original_mkdir(self, *args, **kwargs)
        if self.name.startswith("kestra-trio-"):
            for name in ("memory.limit_in_bytes", "pids.max", "cgroup.procs", "memory.oom_control", "pids.events", "cpuacct.usage"):
                (self / name).write_text("")

    monkeypatch.setattr(Path, "mkdir", mkdir_with_files)
    pool = CgroupPool(support)
    assert not (root / "pids" / "kestra-trio-999999999-1").exists()
    assert (root / "pids" / f"kestra-trio-{os.getpid()}-7").exists()
    group = pool.acquire(memory=2**20, processes=8, cpu=False)
    assert "cpuacct" not in group.dirs
    (group.dirs["pids"] / "pids.events").write_text("max 2\n")
    assert group.usage().pids_refused == 2
    (group.dirs["pids"] / "cgroup.procs").write_text("4242\n")
    assert pool.release(group) is False  # a process is still in it: not reused
    (group.dirs["pids"] / "cgroup.procs").write_text("")
    assert pool.release(group) is True
    again = pool.acquire(memory=2**21, processes=8, cpu=False)
    assert again is group and again.usage() == Usage()  # the last task's refusals are not this one's
    assert (group.dirs["memory"] / "memory.limit_in_bytes").read_text() == str(2**21)
    assert pool.acquire(memory=2**21, processes=8, cpu=True) is not group  # a cpu limit needs cpuacct
