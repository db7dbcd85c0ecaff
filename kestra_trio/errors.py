"""The error tree every layer raises, and the exit codes the CLI maps them to.

A class docstring is its default message (procrastinate's habit), so each error
tells the user what was wrong and, where it can, what to do.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Documented process exit codes (docs/cli.md). One code per family."""

    OK = 0
    #: the execution failed, validation found problems, or the thing asked for does not exist
    FAILURE = 1
    #: bad arguments, or a workflow that does not validate (nothing was created)
    USAGE = 2
    #: the database cannot be opened, is not a kestra-trio database, is corrupt, or refused
    #: writes during a run (entries lost, reason DATABASE_ERROR)
    DATABASE = 3
    #: a plugin manifest is invalid or a plugin cannot be found
    PLUGIN = 4
    #: stopped by SIGHUP: the terminal was closed (the execution is recorded CANCELLED)
    HANGUP = 129
    #: interrupted by Ctrl+C / SIGINT (the execution is recorded CANCELLED)
    INTERRUPTED = 130
    #: stopped by SIGTERM (the execution is recorded CANCELLED)
    TERMINATED = 143


class KestraTrioError(Exception):
    """kestra-trio failed."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or type(self).__name__).strip().splitlines()[0]
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class UsageError(KestraTrioError):
    """invalid arguments; see --help."""

    exit_code = ExitCode.USAGE


class WorkflowError(KestraTrioError):
    """the workflow file cannot be used."""

    exit_code = ExitCode.USAGE


class WorkflowInvalid(WorkflowError):
    """the workflow does not validate; run `kestra-trio validate FILE` for every problem."""

    def __init__(self, issues: list, message: str | None = None) -> None:  # list[ValidationIssue]
        self.issues = list(issues)
        super().__init__(message or f"workflow is invalid ({len(self.issues)} problem(s))")


class InputError(UsageError):
    """a run-time input is missing or has the wrong type."""


class ExecutionNotFound(KestraTrioError):
    """no such execution."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f"Execution not found: {execution_id}")


class StorageError(KestraTrioError):
    """the database cannot be used; check the --db path or KESTRA_TRIO_DB."""

    exit_code = ExitCode.DATABASE


class DatabaseCorrupt(StorageError):
    """the database file is not a kestra-trio database or is corrupt."""


class MigrationError(StorageError):
    """a database migration failed; the database was left at its previous version."""


class IllegalTransition(KestraTrioError):
    """a state change that the state machine does not allow (terminal states never change)."""

    def __init__(self, current: str, target: str, entity: str = "execution") -> None:
        self.current = current
        self.target = target
        super().__init__(f"illegal {entity} transition: {current} -> {target}")


class PluginError(KestraTrioError):
    """a plugin cannot be used."""

    exit_code = ExitCode.PLUGIN


class ManifestInvalid(PluginError):
    """a plugin manifest (plugin.yaml) is invalid."""


class PluginNotFound(PluginError):
    """no plugin provides this task type; see `kestra-trio plugin list`."""


class ConfigError(UsageError):
    """a configuration value (environment variable or option) is invalid."""


class SandboxUnavailable(UsageError):
    """restricted mode cannot start here; nothing was run"""


def only_leaf(group: BaseExceptionGroup) -> BaseException | None:
    """The one exception inside nested one-exception groups (trio nurseries wrap what they
    raise), or None when the group holds more than one."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc
