"""Is the engine that owns an execution still there? Asked by readers and by recovery.

On the engine's own host the answer is certain: its pid exists or not (a zombie counts as
gone). From another host nothing can be seen, so the answer is "not known to be gone".
"""

from __future__ import annotations

import os
import socket


def process_alive(pid: int) -> bool:
    """True while a process with this pid exists (a process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return True
    return True


def engine_gone(pid: int | None, host: str | None) -> bool:
    """True only when the recorded engine ran on this host and its process no longer exists.

    No pid, another host (we cannot see its processes), a process of another user or any
    doubt: False, keep waiting. A zombie (dead, not yet reaped by its parent) counts as gone.
    """
    if pid is None or pid <= 0 or pid == os.getpid() or host != socket.gethostname():
        return False
    if not process_alive(pid):
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
