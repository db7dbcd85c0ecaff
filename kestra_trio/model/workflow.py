"""The workflow model: frozen values produced by loading + validation, consumed by the engine.

Durations are plain float seconds here; the YAML form (`500ms`, `30s`, `5m`) is parsed
by `model.durations`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

BackoffType = Literal["constant", "exponential"]
InputType = Literal["string", "integer", "number", "boolean", "json"]
TriggerType = Literal["manual", "cron", "webhook"]
SecurityMode = Literal["trusted", "restricted"]
SandboxKind = Literal["bubblewrap", "docker"]

#: a task without `timeout` gets this many seconds per attempt
DEFAULT_TASK_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`retry.max` is the total number of attempts (1 = no retry)."""

    max_attempts: int = 1
    backoff: BackoffType = "constant"
    delay: float = 1.0
    max_delay: float | None = None


@dataclass(frozen=True, slots=True)
class TaskSpec:
    id: str
    type: str  # namespace/plugin.action
    inputs: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = DEFAULT_TASK_TIMEOUT
    description: str | None = None
    sandbox: SandboxKind | None = None  # None: the workflow's
    image: str | None = None  # None: the workflow's

    @property
    def namespace(self) -> str:
        return self.type.split("/", 1)[0]

    @property
    def plugin(self) -> str:
        return self.type.split("/", 1)[1].split(".", 1)[0]

    @property
    def action(self) -> str:
        return self.type.rsplit(".", 1)[1]


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    type: InputType = "string"
    default: Any = None
    required: bool = True  # False when a default is given or `required: false`
    description: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    type: TriggerType = "manual"
    schedule: str | None = None  # cron expression when type == "cron"


@dataclass(frozen=True, slots=True)
class Resources:
    """Limits of one restricted task; None: the sandbox default (see plugin_runtime.sandbox)."""

    memory: int | None = None  # bytes
    cpu_seconds: float | None = None
    processes: int | None = None
    file_size: int | None = None  # bytes, largest file a plugin may write


@dataclass(frozen=True, slots=True)
class Permissions:
    network: tuple[str, ...] = ()
    filesystem_read: tuple[str, ...] = ()
    filesystem_write: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    tasks: tuple[TaskSpec, ...]
    namespace: str = "default"
    description: str | None = None
    enabled: bool = True
    trigger: TriggerSpec = field(default_factory=TriggerSpec)
    inputs: tuple[InputSpec, ...] = ()
    timeout: float | None = None  # execution-level timeout, seconds
    security: SecurityMode = "trusted"
    permissions: Permissions = field(default_factory=Permissions)
    sandbox: SandboxKind = "bubblewrap"
    image: str | None = None
    source_path: str | None = None  # the file it was loaded from, for messages

    def sandbox_of(self, spec: TaskSpec) -> tuple[SandboxKind, str | None]:
        """Which sandbox runs a restricted task, and its image (docker): the task's own
        `sandbox`/`image`, else the workflow's."""
        return spec.sandbox or self.sandbox, spec.image or self.image

    def task(self, task_id: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.id == task_id:
                return spec
        raise KeyError(task_id)
