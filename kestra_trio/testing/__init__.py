"""Test workflows and plugins with pytest: the `kt` fixture and its assertions.

`pip install kestra-trio[test]` registers `kestra_trio.testing.plugin` (entry point
`pytest11`), so `kt` exists in every test session; see docs/testing.md. This module imports
nothing heavy: the engine loads when a fixture or helper is first used.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActionResult", "ExecutionResult", "KestraTrio", "MockInvalid", "assert_action_ok", "assert_states",
    "assert_succeeded", "open_harness",
]

_WHERE = {
    "ActionResult": "results", "ExecutionResult": "results", "KestraTrio": "harness", "open_harness": "harness",
    "MockInvalid": "runtimes", "assert_states": "assertions", "assert_succeeded": "assertions",
    "assert_action_ok": "assertions",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kestra_trio.testing' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"kestra_trio.testing.{module}"), name)
