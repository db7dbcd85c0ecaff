"""Lost-engine recovery: run once when a service starts, before its worker claims anything.

An execution whose engine died (kill -9, crash, power loss) never writes its end. On this
host a dead pid is proof: such executions become FAILED [ENGINE_LOST], with every unfinished
task and attempt closed and a scheduler ERROR line saying so. QUEUED executions nobody has
claimed carry no engine and are left alone — they are just rows, and a worker runs them.
"""

from __future__ import annotations

import os
import socket

from kestra_trio.query.liveness import process_alive
from kestra_trio.observability.records import AuditEvent, AuditEventType, LogEntry, LogLevel, now_ms
from kestra_trio.state.states import AttemptState, Reason, State
from kestra_trio.storage.executions import AttemptWrite, ExecutionStore, StateChange
from kestra_trio.storage.logs import LogStore


async def recover_lost_executions(store: ExecutionStore, logs: LogStore | None = None) -> list[str]:
    """Executions left RUNNING by an engine on this host that no longer exists become FAILED,
    with a scheduler ERROR line saying so (the lost engine could not write its own)."""
    lost = []
    for execution_id, pid in await store.unfinished_on_host(socket.gethostname()):
        if pid is None or pid == os.getpid() or process_alive(pid):
            continue
        runs = await store.task_runs(execution_id)
        open_attempts = {a.task_id: a for a in await store.attempts(execution_id) if a.state == "RUNNING"}
        # the real end is unknown (the engine could not record it): the detection time is
        # the end, and the messages say it was detected
        detected = now_ms()
        message = f"the engine process (pid {pid}) died while this task was unfinished (detected by pid {os.getpid()})"
        error = {"message": message, "type": "EngineLost", "reason_code": Reason.ENGINE_LOST.value}
        changes = []
        for run in runs:
            if run.state in ("SUCCESS", "FAILED", "CANCELLED"):
                continue
            attempt = open_attempts.get(run.task_id)
            changes.append(
                StateChange(
                    execution_id, State.FAILED, Reason.ENGINE_LOST.value, message, task_id=run.task_id,
                    fields={"ended_at": detected, "error": error},
                    attempt=None if attempt is None else AttemptWrite(
                        attempt.number, AttemptState.FAILED.value, attempt.started_at, Reason.ENGINE_LOST.value,
                        message, pid=attempt.pid, ended_at=detected,
                    ),
                    at=detected,
                )
            )
        unfinished = [c.task_id for c in changes if c.task_id is not None]
        changes.append(
            StateChange(
                execution_id, State.FAILED, Reason.ENGINE_LOST.value,
                f"the engine process (pid {pid}) died before the execution finished",
                fields={"ended_at": detected},
                audit=[AuditEvent(execution_id, AuditEventType.FAILED, {
                    "error_message": f"the engine process (pid {pid}) died",
                    "failed_task_id": unfinished[0] if unfinished else None,
                    "reason_code": Reason.ENGINE_LOST.value,
                })],
                at=detected,
            )
        )
        try:
            await store.apply(*changes)
            lost.append(execution_id)
        except Exception:
            continue
        if logs is not None:
            entry = LogEntry(
                execution_id, None, LogLevel.ERROR, "scheduler",
                f"Execution failed: the engine process (pid {pid}) died before the execution finished "
                f"[ENGINE_LOST]; {len(unfinished)} unfinished task(s) marked FAILED"
                + (f": {', '.join(unfinished)}" if unfinished else "")
                + "; lines it had not yet written are lost",
                {"reason_code": Reason.ENGINE_LOST.value, "engine_pid": pid, "detected_by_pid": os.getpid()},
            )
            try:
                await logs.insert_batch([entry])
            except Exception:
                pass
    return lost
