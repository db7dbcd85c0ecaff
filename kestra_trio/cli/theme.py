"""Named styles for everything the CLI colours. Change a colour here, nowhere else.

Formatting code refers to these names only (`Text("FAILED", style="kt.state.failed")`);
`console.py` builds consoles with `THEME`, so a renderable never carries a raw colour.
"""

from __future__ import annotations

STYLES: dict[str, str] = {
    # execution and task states
    "kt.state.success": "green",
    "kt.state.failed": "red",
    "kt.state.running": "yellow",
    "kt.state.pending": "dim",
    "kt.state.queued": "blue",
    "kt.state.waiting": "cyan",
    "kt.state.cancelled": "magenta",
    # log levels (INFO keeps the terminal's default colour)
    "kt.log.error": "red",
    "kt.log.warn": "yellow",
    "kt.log.info": "none",
    "kt.log.debug": "dim",
    "kt.log.timestamp": "none",
    "kt.log.source": "none",
    # inspect / list
    "kt.label": "bold",
    "kt.id": "bold",
    "kt.muted": "dim",
    "kt.note": "yellow",
    "kt.error": "red",
    "kt.hint": "dim italic",
    "kt.truncated": "dim",
    "kt.bar": "none",
    "kt.bar.success": "green",
    "kt.bar.failed": "red",
    "kt.bar.running": "yellow",
    "kt.bar.cancelled": "magenta",
    "kt.bar.wait": "dim",
    "kt.audit.type": "bold",
    "kt.table.header": "bold",
}


def state_style(state: str | None) -> str:
    """The style name for an execution, task or attempt state (unknown states stay unstyled)."""
    name = (state or "").lower()
    if name == "timed_out":
        name = "failed"
    key = f"kt.state.{name}"
    return key if key in STYLES else "none"


def level_style(level: str) -> str:
    key = f"kt.log.{level.lower()}"
    if key == "kt.log.warning":
        key = "kt.log.warn"
    return key if key in STYLES else "kt.log.info"


def build_theme():  # -> rich.theme.Theme (rich is imported lazily: `--help` must stay fast)
    from rich.theme import Theme

    return Theme(STYLES, inherit=True)
