"""ExecutionStore: executions, task runs, attempts and cancel requests.

Every state change goes through `apply`: one transaction holds the guarded UPDATE, the
attempt row and the audit events that describe it. If inserting the audit events fails, a
savepoint undoes that insert alone and the change commits: `ChangeResult.audit_failed` says
why, and the engine reports it on stderr (a database write failure never stops an execution).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kestra_trio.errors import ExecutionNotFound, IllegalTransition
from kestra_trio.observability.records import AuditEvent, AuditEventType, now_ms
from kestra_trio.state.states import State
from kestra_trio.state.transitions import restart_transition, transition
from kestra_trio.storage.audit import insert_audit_sync
from kestra_trio.storage.db import Database
from kestra_trio.storage.metrics import insert_metrics_sync
from kestra_trio.storage.rows import (
    ATTEMPT_COLUMNS,
    ATTEMPT_SELECT,
    EXECUTION_SELECT,
    TASK_RUN_SELECT,
    AttemptRow,
    ExecutionRow,
    TaskRunRow,
)
from kestra_trio.storage.text import encodable_text


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


#: the queue every server worker serves (`kestra-trio run` uses a private one)
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class NewExecution:
    id: str
    workflow_id: str
    namespace: str
    trigger_type: str
    inputs: dict[str, Any]  # masked
    workflow_path: str | None
    timeout_ms: int | None
    engine_pid: int | None  # set at creation only for an execution pinned to its process
    engine_host: str | None
    queue: str = DEFAULT_QUEUE
    workflow_revision: int | None = None
    #: what started it, beyond `trigger_type` (cron fire time, webhook body, upstream execution); masked
    trigger: dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    #: a subflow's child: the execution and task that started it, and how deep the chain is
    parent_execution_id: str | None = None
    parent_task_id: str | None = None
    subflow_depth: int = 0


@dataclass(frozen=True)
class NewTaskRun:
    task_id: str
    position: int
    type: str
    needs: Sequence[str]
    max_attempts: int
    timeout_ms: int | None
    phase: str = "tasks"  # tasks | errors | finally
    #: a for_each iteration (`each[2]`): its task, index and item (masked)
    parent_task_id: str | None = None
    iteration: int | None = None
    item: Any = None

    @property
    def first_state(self) -> State:
        return State.WAITING if self.needs else State.PENDING


@dataclass(frozen=True)
class AttemptWrite:
    """Insert or update one attempt row alongside a task state change."""

    number: int
    state: str
    started_at: int
    reason_code: str | None = None
    message: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    pid: int | None = None
    ended_at: int | None = None


@dataclass(frozen=True)
class StateChange:
    """One guarded transition of an execution (task_id None) or of one task run."""

    execution_id: str
    target: State
    reason_code: str
    message: str | None = None
    task_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # extra columns to set
    attempt: AttemptWrite | None = None
    audit: Sequence[AuditEvent] = ()  # extra events, besides the automatic STATE_CHANGE
    at: int = field(default_factory=now_ms)
    #: the RESTARTED edge out of a terminal state (`state.transitions.restart_transition`)
    restart: bool = False


@dataclass(frozen=True)
class ChangeResult:
    changed: bool
    previous: State
    audit_failed: str | None = None


_EXEC_FIELDS = {
    "started_at", "ended_at", "failed_task_id", "cancelled_by", "message", "task_count",
    "engine_pid", "engine_host", "worker_id", "claimed_at", "heartbeat_at", "outputs", "queue", "restart_count",
}
_TASK_FIELDS = {
    "started_at", "ended_at", "duration_ms", "inputs", "outputs", "error", "attempt_count", "sandbox", "max_attempts",
}
_JSON_FIELDS = {"inputs", "outputs", "error", "sandbox"}


def _apply_one(raw: sqlite3.Connection, change: StateChange) -> ChangeResult:
    if change.task_id is None:
        row = raw.execute("SELECT state FROM executions WHERE id = ?", (change.execution_id,)).fetchone()
        if row is None:
            raise ExecutionNotFound(change.execution_id)
        allowed, table, where, params = _EXEC_FIELDS, "executions", "id = ?", (change.execution_id,)
        entity = "execution"
    else:
        row = raw.execute(
            "SELECT state FROM task_runs WHERE execution_id = ? AND task_id = ?",
            (change.execution_id, change.task_id),
        ).fetchone()
        if row is None:
            raise ExecutionNotFound(f"{change.execution_id} (task {change.task_id})")
        allowed, table = _TASK_FIELDS, "task_runs"
        where, params = "execution_id = ? AND task_id = ?", (change.execution_id, change.task_id)
        entity = f"task {change.task_id!r}"
    previous = State(row[0])
    if change.restart:
        restart_transition(previous, change.target, entity=entity)
    elif transition(previous, change.target, entity=entity) is None:
        return ChangeResult(changed=False, previous=previous)
    sets = ["state = ?", "reason_code = ?", "updated_at = ?"]
    values: list[Any] = [change.target.value, change.reason_code, change.at]
    if "message" not in change.fields:
        sets.append("message = ?")
        values.append(change.message)
    for name, value in change.fields.items():
        if name not in allowed:
            raise ValueError(f"cannot set {table}.{name} through a state change")
        sets.append(f"{name} = ?")
        values.append(dumps(value) if name in _JSON_FIELDS and value is not None else value)
    cursor = raw.execute(
        f"UPDATE {table} SET {', '.join(sets)} WHERE {where} AND state = ?",
        (*values, *params, previous.value),
    )
    if cursor.rowcount != 1:  # cannot happen under BEGIN IMMEDIATE, but never trust it silently
        raise IllegalTransition(previous.value, change.target.value, entity)
    if change.attempt is not None and change.task_id is not None:
        _upsert_attempt(raw, change.execution_id, change.task_id, change.attempt)
    metadata = {
        "entity": "execution" if change.task_id is None else "task",
        "from_state": previous.value,
        "to_state": change.target.value,
        "reason": change.reason_code,
    }
    if change.task_id is not None:
        metadata["task_id"] = change.task_id
    if change.message:
        metadata["message"] = change.message
    events = [AuditEvent(change.execution_id, AuditEventType.STATE_CHANGE, metadata, change.at), *change.audit]
    audit_failed = None
    raw.execute("SAVEPOINT audit")
    try:
        insert_audit_sync(raw, events)
    except sqlite3.Error as exc:  # the state change still proceeds; the caller logs the failure
        raw.execute("ROLLBACK TO audit")
        audit_failed = str(exc)
    raw.execute("RELEASE audit")
    return ChangeResult(changed=True, previous=previous, audit_failed=audit_failed)


def _upsert_attempt(raw: sqlite3.Connection, execution_id: str, task_id: str, attempt: AttemptWrite) -> None:
    duration = attempt.ended_at - attempt.started_at if attempt.ended_at is not None else None
    raw.execute(
        f"INSERT INTO task_attempts ({ATTEMPT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (execution_id, task_id, number) DO UPDATE SET state = excluded.state, "
        "reason_code = excluded.reason_code, message = excluded.message, exit_code = excluded.exit_code, "
        "signal = excluded.signal, pid = COALESCE(excluded.pid, task_attempts.pid), "
        "ended_at = excluded.ended_at, duration_ms = excluded.duration_ms",
        (
            execution_id, task_id, attempt.number, attempt.state, attempt.reason_code, attempt.message,
            attempt.exit_code, attempt.signal, attempt.pid, attempt.started_at, attempt.ended_at, duration,
        ),
    )


def apply_sync(raw: sqlite3.Connection, changes: Sequence[StateChange]) -> list[ChangeResult]:
    """Guarded transitions in the caller's transaction (the queue's claim and cancel use it too)."""
    return [_apply_one(raw, change) for change in changes]


def create_sync(
    raw: sqlite3.Connection, new: NewExecution, tasks: Sequence[NewTaskRun], at: int, state: State = State.PENDING
) -> None:
    """Insert the execution (in `state`), its task runs and the CREATED audit event."""
    raw.execute(
        "INSERT INTO executions (id, workflow_id, namespace, state, reason_code, trigger_type, inputs, "
        "workflow_path, created_at, updated_at, timeout_ms, task_count, engine_pid, engine_host, queue, "
        "workflow_revision, trigger_data, labels, parent_execution_id, parent_task_id, subflow_depth) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            new.id, new.workflow_id, new.namespace, state.value, "CREATED", new.trigger_type,
            # a file name may be any bytes (undecodable ones arrive as lone surrogates): stored replaced
            dumps(new.inputs), None if new.workflow_path is None else encodable_text(new.workflow_path), at, at,
            new.timeout_ms, len(tasks), new.engine_pid,
            new.engine_host, new.queue, new.workflow_revision, None if new.trigger is None else dumps(new.trigger),
            dumps(new.labels) if new.labels else None, new.parent_execution_id, new.parent_task_id,
            new.subflow_depth,
        ),
    )
    if new.labels:
        raw.executemany(
            "INSERT INTO execution_labels (execution_id, key, value) VALUES (?,?,?)",
            [(new.id, key, value) for key, value in new.labels.items()],
        )
    _insert_task_runs(raw, new.id, tasks, at)
    created: dict[str, Any] = {"workflow_id": new.workflow_id, "trigger_type": new.trigger_type, "task_count": len(tasks)}
    if new.workflow_revision is not None:
        created["workflow_revision"] = new.workflow_revision
    if new.parent_execution_id is not None:
        created["parent_execution_id"] = new.parent_execution_id
        created["parent_task_id"] = new.parent_task_id
    if new.labels:
        created["labels"] = new.labels
    insert_audit_sync(raw, [AuditEvent(new.id, AuditEventType.CREATED, created, at)])


def _insert_task_runs(raw: sqlite3.Connection, execution_id: str, tasks: Sequence[NewTaskRun], at: int) -> None:
    raw.executemany(
        "INSERT INTO task_runs (execution_id, task_id, position, type, needs, state, reason_code, "
        "max_attempts, timeout_ms, updated_at, phase, parent_task_id, iteration, item) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (
                execution_id, t.task_id, t.position, t.type, dumps(list(t.needs)), t.first_state.value,
                "DEPENDENCY" if t.needs else "CREATED", t.max_attempts, t.timeout_ms, at, t.phase,
                t.parent_task_id, t.iteration, None if t.item is None and t.iteration is None else dumps(t.item),
            )
            for t in tasks
        ],
    )


def open_task_runs_sync(
    raw: sqlite3.Connection, execution_id: str, tasks: Sequence[NewTaskRun], at: int
) -> list[ChangeResult]:
    """Task runs made while an execution runs (for_each iterations, the errors:/finally:
    phases): new rows are inserted; a row left by an earlier run of a restarted execution
    takes the RESTARTED edge back to PENDING/WAITING (its attempts stay: history), in one
    transaction."""
    existing = {
        task_id: attempts or 0
        for task_id, attempts in raw.execute(
            "SELECT task_id, attempt_count FROM task_runs WHERE execution_id = ? AND "
            f"task_id IN ({','.join('?' * len(tasks))})",
            (execution_id, *[t.task_id for t in tasks]),
        )
    } if tasks else {}
    fresh = [t for t in tasks if t.task_id not in existing]
    _insert_task_runs(raw, execution_id, fresh, at)
    results = apply_sync(
        raw,
        [
            StateChange(
                execution_id, t.first_state, "RESTARTED", "run again after a restart", task_id=t.task_id,
                fields={**_CLEARED_TASK_FIELDS, "max_attempts": existing[t.task_id] + t.max_attempts}, restart=True, at=at,
            )
            for t in tasks
            if t.task_id in existing
        ],
    )
    for t in tasks:
        if t.task_id in existing and t.iteration is not None:
            raw.execute(
                "UPDATE task_runs SET item = ? WHERE execution_id = ? AND task_id = ?",
                (dumps(t.item), execution_id, t.task_id),
            )
    if fresh:
        raw.execute(
            "UPDATE executions SET task_count = (SELECT COUNT(*) FROM task_runs WHERE execution_id = ?) WHERE id = ?",
            (execution_id, execution_id),
        )
    return results


@dataclass(frozen=True)
class Restart:
    """`execution restart`: who asked, why, which task runs go again, where it is queued."""

    execution_id: str
    #: task run id -> PENDING or WAITING (where it starts again)
    rerun: Mapping[str, State]
    queue: str
    by: str
    reason: str | None = None
    from_task: str | None = None
    engine_pid: int | None = None
    engine_host: str | None = None
    #: task run id -> its attempts so far + the retries it is given now (`inspect` shows n/max)
    max_attempts: Mapping[str, int] = field(default_factory=dict)


def restart_sync(raw: sqlite3.Connection, restart: Restart, at: int) -> int:
    """The RESTARTED edge in one transaction: the execution back to QUEUED (its end, error
    and outputs cleared, `restart_count` + 1), each re-run task run back to PENDING/WAITING
    (its attempts stay: they are history), one RESTARTED audit event. Returns the new count.

    Raises:
        IllegalTransition: the execution is not finished (a running one is not restarted).
    """
    row = raw.execute("SELECT restart_count FROM executions WHERE id = ?", (restart.execution_id,)).fetchone()
    if row is None:
        raise ExecutionNotFound(restart.execution_id)
    count = int(row[0] or 0) + 1
    message = f"restarted by {restart.by}" + (f": {restart.reason}" if restart.reason else "")
    event = AuditEvent(restart.execution_id, AuditEventType.RESTARTED, {
        "restarted_by": restart.by, "reason": restart.reason, "from_task": restart.from_task,
        "tasks": sorted(restart.rerun), "restart_count": count,
    }, at)
    apply_sync(raw, [
        StateChange(
            restart.execution_id, State.QUEUED, "RESTARTED", message, restart=True, audit=[event], at=at,
            fields={"ended_at": None, "failed_task_id": None, "cancelled_by": None, "outputs": None,
                    "queue": restart.queue, "engine_pid": restart.engine_pid, "engine_host": restart.engine_host,
                    "worker_id": None, "claimed_at": None, "heartbeat_at": None, "restart_count": count},
        ),
        *[
            StateChange(restart.execution_id, target, "RESTARTED", message, task_id=task_id, restart=True,
                        fields={**_CLEARED_TASK_FIELDS, **({"max_attempts": restart.max_attempts[task_id]}
                                                           if task_id in restart.max_attempts else {})}, at=at)
            for task_id, target in restart.rerun.items()
        ],
    ])
    return count


#: what a task run that runs again starts without (its attempts keep the history)
_CLEARED_TASK_FIELDS = {"started_at": None, "ended_at": None, "duration_ms": None, "outputs": None, "error": None}


@dataclass(frozen=True)
class CancelRequest:
    id: int
    execution_id: str
    requested_by: str
    reason: str | None
    requested_at: int


def _request_cancel(
    raw: sqlite3.Connection, execution_id: str, requested_by: str, reason: str | None
) -> tuple[ExecutionRow, bool]:
    row = raw.execute(f"SELECT {EXECUTION_SELECT} FROM executions WHERE id = ?", (execution_id,)).fetchone()
    if row is None:
        raise ExecutionNotFound(execution_id)
    execution = ExecutionRow.from_row(row)
    if execution.is_terminal:
        return execution, False
    # pending, or already taken by the engine that is now stopping: either way a second
    # request would change nothing, so nothing is recorded
    earlier = raw.execute("SELECT 1 FROM cancel_requests WHERE execution_id = ? LIMIT 1", (execution_id,)).fetchone()
    if earlier is not None:
        return execution, False
    at = now_ms()
    raw.execute(
        "INSERT INTO cancel_requests (execution_id, requested_by, reason, requested_at) VALUES (?,?,?,?)",
        (execution_id, requested_by, reason, at),
    )
    insert_audit_sync(
        raw,
        [AuditEvent(execution_id, AuditEventType.CANCEL_REQUESTED, {"requested_by": requested_by, "reason": reason}, at)],
    )
    return execution, True


def _pending_cancel_requests(raw: sqlite3.Connection, execution_id: str) -> list[CancelRequest]:
    rows = raw.execute(
        "SELECT id, execution_id, requested_by, reason, requested_at FROM cancel_requests "
        "WHERE execution_id = ? AND handled_at IS NULL ORDER BY id",
        (execution_id,),
    ).fetchall()
    return [CancelRequest(*r) for r in rows]


def _mark_cancel_requests_handled(raw: sqlite3.Connection, execution_id: str, ids: Sequence[int]) -> None:
    raw.executemany(
        "UPDATE cancel_requests SET handled_at = ? WHERE id = ? AND execution_id = ? AND handled_at IS NULL",
        [(now_ms(), request_id, execution_id) for request_id in ids],
    )


def _take_cancel_requests(raw: sqlite3.Connection, execution_id: str) -> list[CancelRequest]:
    requests = _pending_cancel_requests(raw, execution_id)
    _mark_cancel_requests_handled(raw, execution_id, [r.id for r in requests])
    return requests


def _has_cancel_request(raw: sqlite3.Connection, execution_id: str) -> bool:
    return (
        raw.execute(
            "SELECT 1 FROM cancel_requests WHERE execution_id = ? AND handled_at IS NULL LIMIT 1", (execution_id,)
        ).fetchone()
        is not None
    )


def _pending_cancels(raw: sqlite3.Connection, execution_ids: Sequence[str]) -> list[str]:
    marks = ",".join("?" * len(execution_ids))
    return [
        row[0]
        for row in raw.execute(
            f"SELECT DISTINCT execution_id FROM cancel_requests WHERE handled_at IS NULL AND execution_id IN ({marks})",
            tuple(execution_ids),
        )
    ]


def _get(raw: sqlite3.Connection, execution_id: str) -> ExecutionRow | None:
    row = raw.execute(f"SELECT {EXECUTION_SELECT} FROM executions WHERE id = ?", (execution_id,)).fetchone()
    return ExecutionRow.from_row(row) if row else None


#: at least this many characters for an id prefix to be looked up
MIN_PREFIX = 4
#: how many of the ids an ambiguous prefix matches are named in the error
AMBIGUOUS_SHOWN = 5


class AmbiguousExecutionId(ExecutionNotFound):
    """an execution id prefix matches several executions."""

    def __init__(self, prefix: str, matches: Sequence[str], more: bool = False) -> None:
        super().__init__(prefix)
        self.prefix = prefix
        self.matches = tuple(matches)  # the first AMBIGUOUS_SHOWN, in id order
        self.more = more  # True when there are more than those
        shown = ", ".join(self.matches) + (", …" if more else "")
        self.message = f"Execution id prefix {prefix} matches several executions: {shown}; give more characters"
        self.args = (self.message,)


def _find(raw: sqlite3.Connection, prefix: str) -> list[str]:
    """The exact id, else up to `AMBIGUOUS_SHOWN + 1` ids starting with `prefix` (case-sensitive), in order."""
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:  # an undecodable argument (lone surrogates): no stored id holds one
        return []
    # exact id first; a unique prefix is accepted as a convenience (like git)
    if raw.execute("SELECT 1 FROM executions WHERE id = ?", (prefix,)).fetchone():
        return [prefix]
    if len(prefix) < MIN_PREFIX:
        return []
    # a range on the primary key (not LIKE: case-insensitive, `%`/`_` wildcards, a full scan);
    # U+10FFFF sorts after every character that can follow the prefix in UTF-8 (BINARY) order
    rows = raw.execute(
        "SELECT id FROM executions WHERE id > ? AND id < ? ORDER BY id LIMIT ?",
        (prefix, prefix + "\U0010ffff", AMBIGUOUS_SHOWN + 1),
    ).fetchall()
    return [r[0] for r in rows]


def _list(
    raw: sqlite3.Connection, workflow_id: str | None, state: str | None, limit: int,
    before: tuple[int, str] | None = None, labels: Sequence[tuple[str, str]] = (),
) -> list[ExecutionRow]:
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in labels:  # through idx_labels_key_value
        clauses.append("id IN (SELECT execution_id FROM execution_labels WHERE key = ? AND value = ?)")
        params.extend((key, value))
    if before is not None:  # keyset: the rows after the last one of the previous page
        clauses.append("(created_at, id) < (?, ?)")
        params.extend(before)
    if workflow_id:
        clauses.append("workflow_id = ?")
        params.append(workflow_id)
    if state:
        clauses.append("state = ?")
        params.append(state)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = raw.execute(
        f"SELECT {EXECUTION_SELECT} FROM executions {where} ORDER BY created_at DESC, id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [ExecutionRow.from_row(r) for r in rows]


def children_sync(raw: sqlite3.Connection, execution_id: str) -> list[ExecutionRow]:
    rows = raw.execute(
        f"SELECT {EXECUTION_SELECT} FROM executions WHERE parent_execution_id = ? ORDER BY created_at, id",
        (execution_id,),
    ).fetchall()
    return [ExecutionRow.from_row(r) for r in rows]


def _task_counts(raw: sqlite3.Connection, execution_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {eid: {} for eid in execution_ids}
    if not execution_ids:
        return result
    marks = ",".join("?" * len(execution_ids))
    for eid, state, count in raw.execute(
        f"SELECT execution_id, state, COUNT(*) FROM task_runs WHERE execution_id IN ({marks}) "
        "GROUP BY execution_id, state",
        tuple(execution_ids),
    ):
        result[eid][state] = count
    return result


def _unfinished_on_host(raw: sqlite3.Connection, host: str) -> list[tuple[str, int | None]]:
    return raw.execute(
        "SELECT id, engine_pid FROM executions WHERE state IN ('QUEUED', 'PENDING', 'RUNNING', 'WAITING') "
        "AND engine_host = ?",
        (host,),
    ).fetchall()


def _task_runs(raw: sqlite3.Connection, execution_id: str) -> list[TaskRunRow]:
    rows = raw.execute(
        f"SELECT {TASK_RUN_SELECT} FROM task_runs WHERE execution_id = ? ORDER BY position, iteration", (execution_id,)
    ).fetchall()
    return [TaskRunRow.from_row(r) for r in rows]


def _attempts(raw: sqlite3.Connection, execution_id: str, task_id: str | None) -> list[AttemptRow]:
    if task_id is None:
        rows = raw.execute(
            f"SELECT {ATTEMPT_SELECT} FROM task_attempts WHERE execution_id = ? ORDER BY task_id, number",
            (execution_id,),
        ).fetchall()
    else:
        rows = raw.execute(
            f"SELECT {ATTEMPT_SELECT} FROM task_attempts WHERE execution_id = ? AND task_id = ? ORDER BY number",
            (execution_id, task_id),
        ).fetchall()
    return [AttemptRow.from_row(r) for r in rows]


class ExecutionStore:
    """The engine's and the readers' door to executions, task runs, attempts and cancel requests."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, new: NewExecution, tasks: Sequence[NewTaskRun], *, at: int | None = None) -> None:
        """A PENDING execution outside the queue (the engine enqueues: `SqliteQueue.enqueue`).
        `at`: the creation time (Unix ms), now by default."""
        await self.db.write(create_sync, new, tasks, now_ms() if at is None else at)

    async def apply(self, *changes: StateChange) -> list[ChangeResult]:
        """Apply guarded transitions in one transaction.

        Raises:
            IllegalTransition: a change the state machine forbids (nothing is written).
        """
        try:
            return await self.db.write(apply_sync, changes)
        except UnicodeEncodeError:  # a lone surrogate in some text: store it replaced, once
            from kestra_trio.storage.text import encodable

            return await self.db.write(apply_sync, tuple(encodable(c) for c in changes))

    async def request_cancel(self, execution_id: str, requested_by: str, reason: str | None) -> tuple[ExecutionRow, bool]:
        return await self.db.write(_request_cancel, execution_id, requested_by, reason)

    async def has_cancel_request(self, execution_id: str) -> bool:
        return await self.db.run(_has_cancel_request, execution_id)

    async def pending_cancels(self, execution_ids: Sequence[str]) -> list[str]:
        """Which of `execution_ids` have an unhandled cancel request (one query for all)."""
        if not execution_ids:
            return []
        return await self.db.run(_pending_cancels, list(execution_ids))

    async def take_cancel_requests(self, execution_id: str) -> list[CancelRequest]:
        return await self.db.write(_take_cancel_requests, execution_id)

    async def pending_cancel_requests(self, execution_id: str) -> list[CancelRequest]:
        """The requests not yet handled, oldest first: a read, so it works while writes are refused."""
        return await self.db.run(_pending_cancel_requests, execution_id)

    async def mark_cancel_requests_handled(self, execution_id: str, ids: Sequence[int]) -> None:
        await self.db.write(_mark_cancel_requests_handled, execution_id, ids)

    async def get(self, execution_id: str) -> ExecutionRow | None:
        return await self.db.run(_get, execution_id)

    async def resolve_id(self, text: str) -> str:
        """An exact id, or a unique prefix of one (at least 4 characters).

        Raises:
            AmbiguousExecutionId: the prefix matches several executions (a subclass of
                ExecutionNotFound, so callers that only know "not found" still work).
            ExecutionNotFound: nothing matches.
        """
        matches = await self.db.run(_find, text)
        if len(matches) > 1:
            raise AmbiguousExecutionId(text, matches[:AMBIGUOUS_SHOWN], more=len(matches) > AMBIGUOUS_SHOWN)
        if not matches:
            raise ExecutionNotFound(text)
        return matches[0]

    async def list(
        self, *, workflow_id: str | None = None, state: str | None = None, limit: int = 20,
        before: tuple[int, str] | None = None, labels: Sequence[tuple[str, str]] = (),
    ) -> list[ExecutionRow]:
        """Newest first; `before` (created_at, id) continues after a previous page's last row;
        `labels`: only executions carrying every one of these (key, value) pairs."""
        return await self.db.run(_list, workflow_id, state, limit, before, tuple(labels))

    async def restart(self, restart: Restart) -> int:
        """See `restart_sync`."""
        return await self.db.write(restart_sync, restart, now_ms())

    async def open_task_runs(self, execution_id: str, tasks: Sequence[NewTaskRun]) -> list[ChangeResult]:
        """Task runs made while it runs (for_each iterations, errors:/finally:), see `open_task_runs_sync`."""
        return await self.db.write(open_task_runs_sync, execution_id, list(tasks), now_ms())

    async def record_metrics(self, execution_id: str, task_id: str, attempt: int, metrics: Sequence[Any]) -> None:
        await self.db.write(insert_metrics_sync, execution_id, task_id, attempt, list(metrics), now_ms())

    async def task_counts(self, execution_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        return await self.db.run(_task_counts, list(execution_ids))

    async def unfinished_on_host(self, host: str) -> list[tuple[str, int | None]]:
        """(id, engine pid) of executions not finished whose engine ran on `host`."""
        return await self.db.run(_unfinished_on_host, host)

    async def task_runs(self, execution_id: str) -> list[TaskRunRow]:
        return await self.db.run(_task_runs, execution_id)

    async def attempts(self, execution_id: str, task_id: str | None = None) -> list[AttemptRow]:
        return await self.db.run(_attempts, execution_id, task_id)
