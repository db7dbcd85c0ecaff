"""kestra-trio: a workflow engine on trio that records exactly what happened in every execution.

The public API is small: `load_workflow`, `run_workflow`, the error tree and `ExitCode`.
Heavy modules load on first use, so `import kestra_trio` (and `kestra-trio --help`) stay fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from kestra_trio.errors import ExitCode as ExitCode
from kestra_trio.errors import KestraTrioError as KestraTrioError
from kestra_trio.errors import WorkflowError as WorkflowError
from kestra_trio.errors import WorkflowInvalid as WorkflowInvalid

__all__ = ["ExitCode", "KestraTrioError", "WorkflowError", "WorkflowInvalid", "load_workflow", "run_workflow"]


def __getattr__(name: str) -> Any:
    if name == "load_workflow":
        from kestra_trio.model.loading import load_workflow

        return load_workflow
    if name == "run_workflow":
        from kestra_trio.api import run_workflow

        return run_workflow
    raise AttributeError(f"module 'kestra_trio' has no attribute {name!r}")
