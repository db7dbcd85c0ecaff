"""`kestra-trio validate FILE...` and `kestra-trio schema`.

yaml and jsonschema are imported inside the commands, so `kestra-trio --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kestra_trio.errors import ExitCode, WorkflowError, WorkflowInvalid

if TYPE_CHECKING:
    from kestra_trio.model.catalog import ActionCatalog


def validate(files: list[Path], /, *, plugins: list[Path] | None = None) -> int:
    """Check workflow files and print every problem (`--help` shows `kestra_trio.cli.VALIDATE_HELP`).

    Parameters
    ----------
    files
        Workflow YAML files to check.
    plugins
        Extra plugin directories, so task types and task inputs from them are checked too.
    """
    from kestra_trio.model.loading import load_workflow

    catalog = _catalog(plugins or [])
    failed = 0
    for path in files:
        try:
            workflow = load_workflow(path, catalog=catalog)
        except WorkflowInvalid as exc:
            failed += 1
            for issue in exc.issues:
                _write(f"{issue}\n")
        except WorkflowError as exc:
            failed += 1
            _write(f"{exc}\n")
        else:
            _write(f"{path}: ok\n")
            for line in _restricted_explanation(workflow):
                _write(f"  {line}\n")
    return ExitCode.FAILURE if failed else ExitCode.OK


def _restricted_explanation(workflow) -> list[str]:
    """What a `security: restricted` workflow's tasks will be allowed (nothing for trusted)."""
    from kestra_trio.plugin_runtime.sandbox import explain

    lines = explain(workflow)
    return ["restricted: every task runs sandboxed; it may use:", *(f"  {line}" for line in lines)] if lines else []


def schema() -> int:
    """Print the DSL's JSON Schema (`--help` shows `kestra_trio.cli.SCHEMA_HELP`)."""
    from kestra_trio.model.validation import workflow_json_schema

    _write(json.dumps(workflow_json_schema(), indent=2) + "\n")
    return ExitCode.OK


def _catalog(plugin_dirs: list[Path]) -> ActionCatalog | None:
    """The plugin registry when it is available; without it only the workflow itself is checked."""
    try:
        from kestra_trio.plugin_runtime.registry import PluginRegistry
    except ImportError:
        return None
    return PluginRegistry.discover(extra_dirs=plugin_dirs)  # type: ignore[no-any-return]


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
