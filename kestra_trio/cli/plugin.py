"""`kestra-trio plugin`: list, inspect and validate plugins.

Problems with *other* plugins never hide the ones that work: `list` prints invalid
manifests as notes on stderr and still lists the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import App, Parameter

from kestra_trio.errors import ExitCode, ManifestInvalid

if TYPE_CHECKING:
    from rich.console import Console

    from kestra_trio.plugin_runtime.manifest import PluginManifest
    from kestra_trio.plugin_runtime.registry import PluginRegistry

plugin_app = App(
    name="plugin",
    default_parameter=Parameter(negative=()),
)

PluginsOption = Annotated[
    list[Path] | None,
    Parameter(name="--plugins", help="Extra plugin folder (repeatable); later folders win."),
]
JsonFlag = Annotated[bool, Parameter(name="--json", help="Print JSON instead of a table.")]


def _stdout() -> Console:
    from kestra_trio.cli.console import stdout_console

    return stdout_console()


def _note(text: str) -> None:
    from kestra_trio.cli.console import stderr_console

    stderr_console().print(text)


def _registry(plugins: list[Path] | None) -> PluginRegistry:
    from kestra_trio.plugin_runtime.registry import PluginRegistry

    registry = PluginRegistry.discover(extra_dirs=plugins or ())
    registry.check_all()
    for warning in registry.warnings:
        _note(f"warning: {warning}")
    for error in registry.errors:
        _note(f"error: {error}")
    return registry


def _manifest_dict(manifest: PluginManifest, *, schemas: bool) -> dict[str, Any]:
    actions = []
    for spec in manifest.actions:
        action: dict[str, Any] = {"name": spec.name, "type": f"{manifest.full_name}.{spec.name}"}
        action["description"] = spec.description
        if schemas:
            action["input"] = spec.input_schema
            action["output"] = spec.output_schema
        actions.append(action)
    return {
        "name": manifest.full_name,
        "version": manifest.version,
        "description": manifest.description,
        "author": manifest.author,
        "license": manifest.license,
        "runtime": manifest.runtime,
        "command": list(manifest.command),
        "folder": str(manifest.folder),
        "actions": actions,
    }


def _first_sentence(text: str) -> str:
    head, dot, _ = text.partition(". ")
    return head + ("." if dot else "")


@plugin_app.command(name="list")
def list_plugins(*, plugins: PluginsOption = None, as_json: JsonFlag = False) -> ExitCode:
    """List every task type the plugins provide.

    Parameters
    ----------
    plugins
        Extra plugin folder (repeatable); later folders win over earlier ones and bundled plugins.
    as_json
        Print one JSON object per task type instead of a table.
    """
    registry = _registry(plugins)
    pairs = [(m, a) for m in registry.plugins() for a in m.actions]
    rows = [
        {
            "type": f"{m.full_name}.{a.name}",
            "version": m.version,
            "description": _first_sentence(a.description or m.description),
            "folder": str(m.folder),
        }
        for m, a in pairs
    ]
    if as_json:  # full descriptions
        rows = [{**row, "description": a.description or m.description} for row, (m, a) in zip(rows, pairs)]
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return ExitCode.OK
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_edge=False, pad_edge=False)
    for column in ("TYPE", "VERSION", "DESCRIPTION", "FOLDER"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(row[key]) for key in ("type", "version", "description", "folder")))
    _stdout().print(table)
    return ExitCode.OK


@plugin_app.command
def inspect(name: str, /, *, plugins: PluginsOption = None, as_json: JsonFlag = False) -> ExitCode:
    """Show a plugin's manifest and the input/output schema of each action.

    Parameters
    ----------
    name
        The plugin as namespace/name (e.g. core/shell), or a task type (core/shell.run).
    plugins
        Extra plugin folder (repeatable).
    as_json
        Print the manifest as one JSON object.
    """
    registry = _registry(plugins)
    is_task_type = "." in name.split("/", 1)[-1]
    if is_task_type:
        manifest, _ = registry.resolve(name)  # an unknown action is an error, as in a workflow
    else:
        manifest = registry.get(name)
    data = _manifest_dict(manifest, schemas=True)
    if is_task_type:  # the one action asked for
        data["actions"] = [action for action in data["actions"] if action["type"] == name]
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return ExitCode.OK
    lines = [
        f"{data['name']} {data['version']}",
        f"  description: {data['description']}",
        f"  author: {data['author'] or '-'}   license: {data['license'] or '-'}",
        f"  runtime: {data['runtime']}   command: {' '.join(data['command']) or '-'}",
        f"  folder: {data['folder']}",
    ]
    for action in data["actions"]:
        lines.append(f"\n  {action['type']}: {action['description']}")
        for kind in ("input", "output"):
            schema = json.dumps(action[kind], indent=2, ensure_ascii=False) if action[kind] else "(none)"
            lines.append(f"    {kind}: " + schema.replace("\n", "\n    "))
    from rich.text import Text

    _stdout().print(Text("\n".join(lines)))
    return ExitCode.OK


@plugin_app.command
def validate(folder: Path, /) -> ExitCode:
    """Check a plugin folder's plugin.yaml and print every problem (exit 4 if any).

    Parameters
    ----------
    folder
        The plugin folder (or its plugin.yaml).
    """
    from kestra_trio.plugin_runtime.manifest import load_manifest

    try:
        manifest = load_manifest(folder)
    except ManifestInvalid as exc:
        print(f"invalid: {exc}")
        return ExitCode.PLUGIN
    for warning in manifest.warnings:
        print(f"warning: {warning}")
    problem = _program_problem(manifest)
    if problem is not None:  # the manifest parses, but no task of it could start
        print(f"invalid: {manifest.path}: {problem}")
        return ExitCode.PLUGIN
    for token in manifest.argv[1:]:
        looks_like_file = not token.startswith(("-", "/")) and ("/" in token or Path(token).suffix)
        if looks_like_file and not (manifest.folder / token).exists():
            print(f"warning: {manifest.path}: command file {token!r} not found in {manifest.folder}")
    types = ", ".join(manifest.task_types())
    print(f"ok: {manifest.full_name} {manifest.version} ({len(manifest.actions)} action(s): {types})")
    for line in _restricted_notes(manifest):
        print(f"  {line}")
    return ExitCode.OK


def _restricted_notes(manifest) -> list[str]:
    """What the plugin gets when a workflow runs it with security: restricted."""
    import sys

    uses_python = manifest.runtime != "builtin" and bool(manifest.argv) and manifest.argv[0] == sys.executable
    notes = [
        "restricted mode (security: restricted): the plugin sees its own folder read-only, a fresh work folder, a "
        "private /tmp and only the paths, hosts and environment names the workflow's permissions grant",
        "  bubblewrap: the system folders" + (" and this engine's Python" if uses_python else "") + " read-only; "
        "no network unless permissions.network (then HTTP(S)_PROXY points at the engine's allow-list proxy)",
    ]
    if manifest.runtime == "builtin":
        notes.append("  docker: the command runs with the image's /bin/sh")
    elif uses_python:
        notes.append("  docker: {python} is the image's python3 (the image must have one); kestra_trio.sdk is mounted for it")
    else:
        notes.append(f"  docker: {manifest.command[0]!r} must exist in the image; the plugin folder is mounted at the same path")
    return notes


def _program_problem(manifest) -> str | None:
    """Why the command's program could not be executed here, if it could not."""
    import os
    import shutil

    if manifest.runtime == "builtin" or not manifest.argv:
        return None
    program, written = manifest.argv[0], manifest.command[0]
    if "/" not in program:
        if shutil.which(program) is None:
            return f"command program {written!r} is not found on PATH"
        return None
    path = Path(program)
    if not path.exists():
        return f"command program {written!r} does not exist ({path})"
    if path.is_dir() or not os.access(path, os.X_OK):
        return f"command program {written!r} is not an executable file (chmod +x {path})"
    return None
