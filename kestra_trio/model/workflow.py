"""The workflow model: frozen values produced by loading + validation, consumed by the engine.

Durations are plain float seconds here; the YAML form (`500ms`, `30s`, `5m`) is parsed
by `model.durations`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

BackoffType = Literal["constant", "exponential"]
InputType = Literal["string", "integer", "number", "boolean", "json"]
SecurityMode = Literal["trusted", "restricted"]
SandboxKind = Literal["bubblewrap", "docker"]


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
    #: seconds per attempt; None: no limit (or KESTRA_TRIO_DEFAULT_TASK_TIMEOUT, see model.defaults)
    timeout: float | None = None
    description: str | None = None
    sandbox: SandboxKind | None = None  # None: the workflow's
    image: str | None = None  # None: the workflow's
    # -- flow control (issue 11) --
    #: a template (or a literal boolean): false -> the task ends SKIPPED without running
    run_if: str | bool | None = None
    #: run once per item of a list; None: run once
    for_each: ForEach | None = None
    #: a failure of this task does not fail the execution (it ends SUCCESS, "1 failure allowed")
    allow_failure: bool = False

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
    inputs: tuple[InputSpec, ...] = ()
    timeout: float | None = None  # execution-level timeout, seconds
    security: SecurityMode = "trusted"
    permissions: Permissions = field(default_factory=Permissions)
    sandbox: SandboxKind = "bubblewrap"
    image: str | None = None
    source_path: str | None = None  # the file it was loaded from, for messages
    # -- flow control, context and service keys (issue 11) --
    #: `apiVersion:` / `version:` as normalised ("v1")
    api_version: str = "v1"
    #: `errors:` tasks run when the execution failed; `finally:` tasks always run last
    errors: tuple[TaskSpec, ...] = ()
    finally_tasks: tuple[TaskSpec, ...] = ()
    #: `variables:`: {{ vars.NAME }}; values may hold templates (rendered once, at the start)
    variables: Mapping[str, Any] = field(default_factory=dict)
    #: `outputs:`: the execution's own outputs, rendered when its tasks are done
    outputs: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    #: what starts it besides `kestra-trio run` (the single `trigger:` form becomes one entry)
    triggers: tuple[TriggerSpec, ...] = ()
    concurrency: Concurrency | None = None

    def sandbox_of(self, spec: TaskSpec) -> tuple[SandboxKind, str | None]:
        """Which sandbox runs a restricted task, and its image (docker): the task's own
        `sandbox`/`image`, else the workflow's."""
        return spec.sandbox or self.sandbox, spec.image or self.image

    def task(self, task_id: str) -> TaskSpec:
        """A task of any phase (tasks, errors, finally) by id."""
        for spec in self.all_tasks():
            if spec.id == task_id:
                return spec
        raise KeyError(task_id)

    def all_tasks(self) -> tuple[TaskSpec, ...]:
        return self.tasks + self.errors + self.finally_tasks


# -- flow control, triggers, concurrency (issue 11) ----------------------------------------------

#: the task type that runs another workflow as a child execution
SUBFLOW_TYPE = "core/flow.subflow"
CatchUp = Literal["none", "last", "all"]
ConcurrencyBehavior = Literal["queue", "cancel", "fail"]
FlowTriggerState = Literal["SUCCESS", "FAILED", "CANCELLED"]


@dataclass(frozen=True, slots=True)
class ForEach:
    """`for_each:` + `concurrency:` of a task: one task run per item (`each[0]`, `each[1]` ...)."""

    #: a template that renders to a list, or the literal list as written
    items: str | tuple[Any, ...]
    #: iterations running at once (they also share --max-parallel)
    concurrency: int = 1


@dataclass(frozen=True, slots=True)
class SubflowCall:
    """The inputs of a `core/flow.subflow` task, once rendered (see `subflow_call`)."""

    workflow: str  # a workflow id, or a path to its file (relative to the parent's folder)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    wait: bool = True

    @property
    def is_path(self) -> bool:
        return "/" in self.workflow or self.workflow.endswith((".yaml", ".yml"))


def subflow_call(inputs: Mapping[str, Any]) -> SubflowCall:
    """A subflow task's rendered inputs as a SubflowCall (validation checked their shape)."""
    return SubflowCall(workflow=inputs["workflow"], inputs=dict(inputs.get("inputs") or {}), wait=inputs.get("wait", True))


@dataclass(frozen=True, slots=True)
class CronTrigger:
    id: str
    cron: str  # as written: 5 fields, 6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly
    timezone: str = "UTC"  # an IANA name
    #: missed fire times after a downtime: run none, only the last one, or all of them
    catch_up: CatchUp = "last"
    inputs: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    type: Literal["cron"] = "cron"

    @property
    def expression(self) -> str:
        """The cron expression with @-macros expanded, for cronsim."""
        return CRON_MACROS.get(self.cron.strip().lower(), self.cron)


#: the @-macros `cron:` accepts, as the 5-field expression each stands for
CRON_MACROS = {
    "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class WebhookTrigger:
    id: str
    #: the secret part of the webhook URL: 16+ characters, or "{{ secrets.NAME }}"
    key: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    type: Literal["webhook"] = "webhook"

    @property
    def key_secret(self) -> str | None:
        """The secret's name when the key is `{{ secrets.NAME }}`."""
        return secret_reference(self.key)


def secret_reference(text: str) -> str | None:
    """NAME when `text` is exactly `{{ secrets.NAME }}` (a webhook key written as a reference)."""
    import re

    match = re.fullmatch(r"\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", text)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class FlowTrigger:
    """Start when an execution of another workflow ends in one of `states`."""

    id: str
    workflow: str
    namespace: str | None = None  # None: this workflow's namespace
    states: tuple[FlowTriggerState, ...] = ("SUCCESS",)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    type: Literal["flow"] = "flow"


TriggerSpec = CronTrigger | WebhookTrigger | FlowTrigger


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most `limit` executions of this workflow run at once; `behavior` says what
    happens to one more: wait its turn (queue), be cancelled, or fail."""

    limit: int
    behavior: ConcurrencyBehavior = "queue"
