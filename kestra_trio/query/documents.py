"""The JSON documents readers print and (next) the HTTP API returns: one definition of each.

`execution inspect --json`, `execution list --json` and `execution logs --json/--jsonl` print
these; `GET /executions/{id}` and the log endpoints return the same objects, so a script
written against one works against the other. Pure: values in, JSON-ready values out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kestra_trio.observability.records import iso_ms as iso_ms
from kestra_trio.storage.rows import TERMINAL_STATES

if TYPE_CHECKING:
    from kestra_trio.inspection.inspector import ExecutionSnapshot
    from kestra_trio.storage.rows import AttemptRow, AuditRow, ExecutionRow, LogRow, TaskRunRow
    from kestra_trio.storage.sandbox import SandboxRows
    from kestra_trio.storage.workflows import RevisionRow, WorkflowRow



def duration_of(started: int | None, ended: int | None, now_ms: int, running: bool) -> int | None:
    """How long it ran: to its end, or to `now_ms` while it still runs; None before it started."""
    if started is None:
        return None
    if ended is not None:
        return ended - started
    return now_ms - started if running else None


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_encode = _ENCODER.encode
_encode_str = json.encoder.encode_basestring  # the C version when available


def log_json_object(
    execution_id: str,
    task_id: str | None,
    timestamp: int,
    level: str,
    source: str,
    message: str,
    metadata: Any,
) -> dict[str, Any]:
    """The `--json` / `--jsonl` object. `metadata` may be the stored JSON text or a dict."""
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            metadata = {"_unreadable": metadata}
    return {
        "execution_id": execution_id,
        "task_id": task_id,
        "timestamp": iso_ms(timestamp),
        "level": level,
        "source": source,
        "message": message,
        "metadata": metadata if metadata is not None else {},
    }


def log_json(execution_id: str, task_id, timestamp, level, source, message, metadata) -> str:
    """One log entry as compact JSON text (no newline). Control characters are JSON-escaped."""
    return _encode(log_json_object(execution_id, task_id, timestamp, level, source, message, metadata))


class LogJsonFormatter:
    """Fast `log_json` for one execution: the same text, built without a dict per row.

    Strings go through the C string encoder; the timestamp's second part is cached; stored
    metadata is JSON text that our own writer produced with `json.dumps`, so it is copied
    into the line as is instead of being parsed and encoded again.
    """

    __slots__ = ("_head", "_second", "_prefix")

    def __init__(self, execution_id: str) -> None:
        self._head = '{"execution_id":' + _encode_str(execution_id) + ',"task_id":'
        self._second = -1
        self._prefix = ""

    def __call__(self, task_id: str | None, timestamp: int, level: str, source: str, message: str, metadata: Any) -> str:
        seconds, millis = divmod(timestamp, 1000)
        if seconds != self._second:
            self._second = seconds
            self._prefix = ',"timestamp":"' + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        if metadata is None:
            meta = "{}"
        elif metadata.__class__ is str and metadata[:1] == "{" and metadata[-1:] == "}":
            # stored by our own writer with json.dumps: already a JSON object, copied as is
            meta = metadata
        else:
            meta = _encode(log_json_object("", None, 0, "", "", "", metadata)["metadata"])
        return (
            f'{self._head}{"null" if task_id is None else _encode_str(task_id)}{self._prefix}.{millis:03d}Z"'
            f',"level":{_encode_str(level)},"source":{_encode_str(source)},"message":{_encode_str(message)}'
            f',"metadata":{meta}}}'
        )


def log_row_json(row: LogRow) -> str:
    return log_json(row.execution_id, row.task_id, row.timestamp, row.level, row.source, row.message, row.metadata)


def execution_document(execution: ExecutionRow, now: int) -> dict[str, Any]:
    running = execution.state not in TERMINAL_STATES
    return {
        "id": execution.id,
        "workflow_id": execution.workflow_id,
        "namespace": execution.namespace,
        "state": execution.state,
        "reason": execution.reason_code,
        "message": execution.message,
        "trigger": execution.trigger_type,
        "inputs": execution.inputs,
        "workflow_path": execution.workflow_path,
        "workflow_revision": execution.workflow_revision,
        "trigger_data": execution.trigger_data,
        "queue": execution.queue,
        "created_at": iso_ms(execution.created_at),
        "started_at": iso_ms(execution.started_at),
        "ended_at": iso_ms(execution.ended_at),
        "duration_ms": duration_of(execution.started_at, execution.ended_at, now, running),
        "timeout_ms": execution.timeout_ms,
        "task_count": execution.task_count,
        "log_entry_count": execution.log_entry_count,
        "log_entries_lost": execution.log_entries_lost,
        "failed_task_id": execution.failed_task_id,
        "cancelled_by": execution.cancelled_by,
        "engine_pid": execution.engine_pid,
        "engine_host": execution.engine_host,
        # issue 11: the workflow's outputs, labels, subflow parent, restarts
        "outputs": execution.outputs,
        "labels": execution.labels or {},
        "parent_execution_id": execution.parent_execution_id,
        "parent_task_id": execution.parent_task_id,
        "restart_count": execution.restart_count,
    }


def _attempt_json(attempt: AttemptRow) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "state": attempt.state,
        "reason": attempt.reason_code,
        "message": attempt.message,
        "exit_code": attempt.exit_code,
        "signal": attempt.signal,
        "pid": attempt.pid,
        "started_at": iso_ms(attempt.started_at),
        "ended_at": iso_ms(attempt.ended_at),
        "duration_ms": attempt.duration_ms,
    }


def _task_json(task: TaskRunRow, attempts: Sequence[AttemptRow], states: Mapping[str, str], now: int) -> dict[str, Any]:
    running = task.state == "RUNNING"
    return {
        "task_id": task.task_id,
        "type": task.type,
        "position": task.position,
        "state": task.state,
        "reason": task.reason_code,
        "message": task.message,
        "needs": [{"task_id": need, "state": states.get(need)} for need in task.needs],
        "attempt_count": task.attempt_count,
        "max_attempts": task.max_attempts,
        "timeout_ms": task.timeout_ms,
        "started_at": iso_ms(task.started_at),
        "ended_at": iso_ms(task.ended_at),
        "duration_ms": task.duration_ms
        if task.duration_ms is not None
        else duration_of(task.started_at, task.ended_at, now, running),
        "inputs": task.inputs,
        "outputs": task.outputs,
        "error": task.error,
        "attempts": [_attempt_json(a) for a in attempts],
        "phase": task.phase,
        "parent_task_id": task.parent_task_id,
        "iteration": task.iteration,
        "item": task.item,
    }


def _audit_json(event: AuditRow) -> dict[str, Any]:
    return {"id": event.id, "event_type": event.event_type, "timestamp": iso_ms(event.timestamp), "metadata": event.metadata}


def snapshot_document(snapshot: ExecutionSnapshot, *, task_id: str | None = None) -> dict[str, Any]:
    """`execution inspect --json`: execution, tasks (inputs, outputs, errors, attempts), audit events."""
    now = snapshot.taken_at_ms
    states = snapshot.task_states
    tasks = snapshot.tasks if task_id is None else [t for t in snapshot.tasks if t.task_id == task_id]
    result: dict[str, Any] = {
        "execution": execution_document(snapshot.execution, now),
        "tasks": [_task_json(t, snapshot.attempts_by_task.get(t.task_id, []), states, now) for t in tasks],
        "audit_events": [_audit_json(e) for e in snapshot.audit],
        "children": [{"id": c.id, "workflow_id": c.workflow_id, "state": c.state, "parent_task_id": c.parent_task_id}
                     for c in snapshot.children],
        "metrics": [{"task_id": m.task_id, "attempt": m.attempt, "name": m.name, "type": m.type, "value": m.value,
                     "tags": m.tags, "recorded_at": iso_ms(m.recorded_at)} for m in snapshot.metrics],
        "generated_at": iso_ms(now),
    }
    if task_id is not None:
        result["task_logs"] = [json.loads(log_row_json(row)) for row in snapshot.task_logs]
    return result


def workflow_document(row: WorkflowRow) -> dict[str, Any]:
    """One registry entry: `workflow list --json` prints a list of these, `GET /workflows` too."""
    return {
        "id": row.id,
        "namespace": row.namespace,
        "revision": row.revision,
        "enabled": row.enabled,
        "task_count": row.task_count,
        "source_path": row.source_path,
        "created_at": iso_ms(row.created_at),
        "updated_at": iso_ms(row.updated_at),
    }


def revision_document(row: RevisionRow) -> dict[str, Any]:
    """One registry revision: `workflow show/history --json` and `GET /workflows/{id}/revisions`."""
    result: dict[str, Any] = {
        "workflow_id": row.workflow_id,
        "revision": row.revision,
        "namespace": row.namespace,
        "sha256": row.source_hash,
        "task_count": row.task_count,
        "source_path": row.source_path,
        "applied_at": iso_ms(row.applied_at),
    }
    if row.source is not None:
        result["source"] = row.source
    return result


def sandbox_document(rows: SandboxRows, task_id: str | None = None) -> dict[str, Any]:
    """Restricted mode's part of `inspect --json`: each task's sandbox and the refusals."""
    return {
        "sandboxes": {t: d for t, d in rows.sandboxes.items() if task_id is None or t == task_id},
        "refusals": [
            {"task_id": r.task_id, "attempt": r.attempt, "at": r.at, "kind": r.kind, "target": r.target, "detail": r.detail}
            for r in rows.refusals
            if task_id is None or r.task_id == task_id
        ],
    }


def inspect_document(snapshot: ExecutionSnapshot, *, task_id: str | None = None) -> dict[str, Any]:
    """Exactly what `execution inspect --json` prints and `GET /api/v1/executions/{id}` returns."""
    payload = snapshot_document(snapshot, task_id=task_id)
    if snapshot.sandbox is not None and (snapshot.sandbox.sandboxes or snapshot.sandbox.refusals):
        payload["sandbox"] = sandbox_document(snapshot.sandbox, task_id)
    return payload


def execution_list_document(
    executions: Sequence[ExecutionRow], counts: Mapping[str, Mapping[str, int]], now_ms: int
) -> list[dict[str, Any]]:
    result = []
    for execution in executions:
        item = execution_document(execution, now_ms)
        item["task_states"] = dict(counts.get(execution.id, {}))
        result.append(item)
    return result


# --------------------------------------------------------------------------- and back
# The remote CLI (`--server URL`) gets these documents from the HTTP API and prints them with
# the same pure renderers as the local CLI: these rebuild the rows the renderers take. Fields
# a document does not carry (update times, the worker's lease) are not shown by any view.


def ms_from_iso(text: str | None) -> int | None:
    """`2026-11-21T10:15:30.123Z` → Unix ms (the inverse of `iso_ms`)."""
    if text is None:
        return None
    import calendar

    whole, _, millis = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 1000 + int((millis or "0").ljust(3, "0")[:3])


def execution_from_document(doc: Mapping[str, Any]) -> ExecutionRow:
    from kestra_trio.storage.rows import ExecutionRow

    created = ms_from_iso(doc["created_at"]) or 0
    started, ended = ms_from_iso(doc.get("started_at")), ms_from_iso(doc.get("ended_at"))
    return ExecutionRow(
        id=doc["id"], workflow_id=doc["workflow_id"], namespace=doc["namespace"], state=doc["state"],
        reason_code=doc.get("reason"), message=doc.get("message"), trigger_type=doc.get("trigger") or "manual",
        inputs=doc.get("inputs"), workflow_path=doc.get("workflow_path"), created_at=created, started_at=started,
        ended_at=ended, updated_at=ended or started or created, timeout_ms=doc.get("timeout_ms"),
        log_entry_count=doc.get("log_entry_count") or 0, task_count=doc.get("task_count") or 0,
        failed_task_id=doc.get("failed_task_id"), cancelled_by=doc.get("cancelled_by"),
        engine_pid=doc.get("engine_pid"), engine_host=doc.get("engine_host"), queue=doc.get("queue") or "default",
        workflow_revision=doc.get("workflow_revision"), trigger_data=doc.get("trigger_data"),
        log_entries_lost=doc.get("log_entries_lost") or 0,
    )


def snapshot_from_document(doc: Mapping[str, Any], task_id: str | None = None) -> ExecutionSnapshot:
    """The snapshot an `inspect_document` was made of (as far as any view shows it): `doc` is the
    whole execution's document; with `task_id`, its `task_logs` are that task's."""
    from kestra_trio.inspection.inspector import ExecutionSnapshot
    from kestra_trio.storage.rows import AttemptRow, AuditRow, LogRow, TaskRunRow
    from kestra_trio.storage.sandbox import RefusalRow, SandboxRows

    execution = execution_from_document(doc["execution"])
    eid = execution.id
    tasks, attempts = [], []
    for task in doc.get("tasks", []):
        started, ended = ms_from_iso(task.get("started_at")), ms_from_iso(task.get("ended_at"))
        tasks.append(TaskRunRow(
            execution_id=eid, task_id=task["task_id"], position=task.get("position", 0), type=task.get("type", ""),
            needs=[need["task_id"] for need in task.get("needs", [])], state=task["state"],
            reason_code=task.get("reason"), message=task.get("message"), attempt_count=task.get("attempt_count", 0),
            max_attempts=task.get("max_attempts", 1), timeout_ms=task.get("timeout_ms"), inputs=task.get("inputs"),
            outputs=task.get("outputs"), error=task.get("error"), started_at=started, ended_at=ended,
            duration_ms=task.get("duration_ms") if ended is not None else None,
            updated_at=ended or started or execution.created_at,
        ))
        for attempt in task.get("attempts", []):
            attempts.append(AttemptRow(
                execution_id=eid, task_id=task["task_id"], number=attempt["number"], state=attempt["state"],
                reason_code=attempt.get("reason"), message=attempt.get("message"), exit_code=attempt.get("exit_code"),
                signal=attempt.get("signal"), pid=attempt.get("pid"), started_at=ms_from_iso(attempt.get("started_at")) or 0,
                ended_at=ms_from_iso(attempt.get("ended_at")), duration_ms=attempt.get("duration_ms"),
            ))
    audit = [
        AuditRow(event["id"], eid, event["event_type"], ms_from_iso(event["timestamp"]) or 0, event.get("metadata") or {})
        for event in doc.get("audit_events", [])
    ]
    task_logs = [
        LogRow(0, eid, entry.get("task_id"), ms_from_iso(entry["timestamp"]) or 0, entry["level"], entry["source"],
               entry["message"], entry.get("metadata"))
        for entry in doc.get("task_logs", [])
    ]
    sandbox = None
    if "sandbox" in doc:
        part = doc["sandbox"]
        sandbox = SandboxRows(
            dict(part.get("sandboxes", {})),
            [RefusalRow(r["task_id"], r["attempt"], r["at"], r["kind"], r["target"], r.get("detail"))
             for r in part.get("refusals", [])],
        )
    return ExecutionSnapshot(
        execution, tasks, attempts, audit, task_logs, task_id, ms_from_iso(doc.get("generated_at")) or 0, sandbox,
    )
