"""What validation needs to know about plugins, as a Protocol.

The plugin registry (`plugin_runtime.registry`) implements it; the model layer must not
import the registry (layers point one way), and tests use a small fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["ActionCatalog"]


class ActionCatalog(Protocol):
    """The task types that exist and the JSON Schema of each one's inputs."""

    def known_types(self) -> list[str]:
        """Every `namespace/plugin.action` the catalog can run, for did-you-mean hints."""
        ...

    def input_schema(self, task_type: str) -> Mapping[str, Any] | None:
        """The action's input JSON Schema, or None when the action declares none.

        Raises:
            LookupError: the plugin or action is unknown; the message is shown to the user
                as is, e.g. "unknown plugin 'core/shel' (did you mean core/shell?)".
        """
        ...
