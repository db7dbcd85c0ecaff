"""Ballast: disk space held in reserve beside the database, so a run's last writes fit.

A disk that fills up during a run refuses every write, including the few that matter most
at the end: the count of what was lost, the ERROR line at the gap and the execution's final
state. So an engine reserves `BALLAST_BYTES` in a file beside the database while it runs,
and deletes it when it gives up waiting for the database: those last writes then fit
(CockroachDB keeps an emergency ballast file for the same reason). One file per run
(`.<db name>.ballast-<pid>-<random>`); a file left by an engine that was killed is removed
by the next one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

BALLAST_BYTES = 1024 * 1024


class Ballast:
    """The reserved file, or nothing (no database file, or no room even for the reserve)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @property
    def held(self) -> bool:
        return self.path is not None

    def release(self) -> None:
        """Give the space back to the disk (idempotent, never raises)."""
        path, self.path = self.path, None
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()


def ballast_path(db_path: Path, pid: int) -> Path:
    return db_path.with_name(f".{db_path.name}.ballast-{pid}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def hold_ballast(db_path: Path | None, size: int = BALLAST_BYTES) -> Iterator[Ballast]:
    """Reserve `size` bytes beside `db_path` for as long as the block runs."""
    if db_path is None or size <= 0:
        yield Ballast(None)
        return
    _remove_stale(db_path)
    ballast = Ballast(_reserve(ballast_path(db_path, os.getpid()), size))
    try:
        yield ballast
    finally:
        ballast.release()


def _reserve(path: Path, size: int) -> Path | None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # a read-only folder, ...: run without a reserve
        return None
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError:  # the disk is already (nearly) full
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    os.close(fd)
    return path


def _remove_stale(db_path: Path) -> None:
    """Ballast files of engines that no longer exist (killed with SIGKILL)."""
    prefix = f".{db_path.name}.ballast-"
    try:
        names = [entry.name for entry in os.scandir(db_path.parent) if entry.name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].partition("-")[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            (db_path.parent / name).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
