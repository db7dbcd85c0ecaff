"""Ballast: space reserved beside the database while a run lasts, given back when it gives up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kestra_trio.storage.ballast import BALLAST_BYTES, hold_ballast


def ballasts(folder: Path) -> list[Path]:
    return sorted(folder.glob(".k.db.ballast-*"))


def test_the_reserve_is_held_while_the_run_lasts_and_released_once(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    with hold_ballast(db) as ballast, hold_ballast(db) as other:  # two runs of one process
        files = ballasts(tmp_path)
        assert len(files) == 2 and all(f.stat().st_blocks * 512 >= BALLAST_BYTES for f in files)
        ballast.release()
        ballast.release()  # idempotent
        assert ballasts(tmp_path) == [other.path] and not ballast.held
    assert ballasts(tmp_path) == []


def test_a_reserve_left_by_a_killed_engine_is_removed_by_the_next_one(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f".k.db.ballast-{int(dead.stdout)}-0123abcd"
    left.write_bytes(b"\0" * 4096)
    alive = tmp_path / f".k.db.ballast-{os.getppid()}-feedbeef"  # a running engine's: kept
    alive.write_bytes(b"")
    with hold_ballast(tmp_path / "k.db"):
        assert not left.exists() and alive.exists()


def test_no_database_file_means_no_reserve() -> None:
    # (no room for it: tests/e2e/test_storage_faults.py fills a small disk before a run)
    with hold_ballast(None) as ballast:
        assert not ballast.held
