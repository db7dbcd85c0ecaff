"""PURE: the restricted-mode part of `execution inspect`: each task's sandbox, permissions and
limits (with what enforces each), and every refusal recorded. Refused targets come from
plugins, so every stored text is shown literally (escaped), never as markup."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from kestra_trio.cli.formatting import clock_ms, literal, literal_line
from kestra_trio.model.sizes import format_size
from kestra_trio.storage.sandbox import SandboxRows

LIMIT_ORDER = ("memory", "processes", "file_size", "cpu_seconds")


def _limit(name: str, value: Any) -> str:
    if value is None:
        return "no limit"
    if name in ("memory", "file_size") and isinstance(value, int):
        return format_size(value)
    if name == "cpu_seconds" and isinstance(value, (int, float)):
        return f"{value:g} s"
    return str(value)


def _list(values: Any) -> str:
    items = [str(v) for v in values] if isinstance(values, list) else []
    return ", ".join(literal_line(v) for v in items) if items else "-"


def sandbox_lines(description: dict[str, Any], indent: str = "    ") -> list[Text]:
    runtime = str(description.get("runtime", "?"))
    image = description.get("image")
    head = f"runtime: {literal_line(runtime)}" + (f" (image {literal_line(str(image))})" if image else "")
    filesystem = description.get("filesystem") if isinstance(description.get("filesystem"), dict) else {}
    lines = [
        head,
        f"network: {_list(description.get('network')) if description.get('network') else 'none'}",
        f"filesystem: read {_list(filesystem.get('read'))}; write {_list(filesystem.get('write'))}",
        f"env: {_list(description.get('env'))}",
    ]
    resources = description.get("resources") if isinstance(description.get("resources"), dict) else {}
    how = description.get("enforcement") if isinstance(description.get("enforcement"), dict) else {}
    limits = []
    for name in LIMIT_ORDER:
        if name in resources:
            value = resources[name]
            by = f" ({literal_line(str(how[name]))})" if name in how and value is not None else ""
            limits.append(f"{name} {_limit(name, value)}{by}")
    if limits:
        lines.append("limits: " + ", ".join(limits))
    return [Text(indent + line) for line in lines]


def sandbox_view(rows: SandboxRows, task_id: str | None = None) -> list[Text]:
    """Sections `Sandbox` and `Refusals`; nothing for a trusted execution."""
    sandboxes = {t: d for t, d in rows.sandboxes.items() if task_id is None or t == task_id}
    refusals = [r for r in rows.refusals if task_id is None or r.task_id == task_id]
    if not sandboxes and not refusals:
        return []
    parts: list[Text] = [Text(""), Text("Sandbox (security: restricted)", style="kt.label")]
    groups: dict[str, list[str]] = {}
    for task, description in sandboxes.items():
        groups.setdefault(json.dumps(description, sort_keys=True), []).append(task)
    for key, tasks in groups.items():
        who = "every task" if len(groups) == 1 and task_id is None else ", ".join(literal_line(t) for t in tasks)
        parts.append(Text(f"  {who}:"))
        parts += sandbox_lines(json.loads(key))
    parts += [Text(""), Text(f"Refusals ({len(refusals)})", style="kt.label")]
    if not refusals:
        parts.append(Text("  none", style="kt.muted"))
    for refusal in refusals:
        parts.append(
            Text(
                f"  {clock_ms(refusal.at)}  {literal_line(refusal.task_id)}  attempt {refusal.attempt}  "
                f"{literal_line(refusal.kind)}  {literal_line(refusal.target)}"
                + (f"  {literal(refusal.detail)}" if refusal.detail else "")
            )
        )
    return parts
