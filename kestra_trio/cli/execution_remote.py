"""The `execution` commands with `--server`: the same arguments, output and exit codes as the
local ones (`cli/execution.py`), read from and sent to the server's HTTP API."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

from kestra_trio.cli.execution import (
    EXIT_FAILURE,
    EXIT_OK,
    TERMINAL,
    _arg,
    _fail,
    _logs_end,
    _print_inspect,
    _say,
    print_logs,
    say_cancel_outcome,
)
from kestra_trio.cli.remote import RemoteApi, RemoteNotFound, log_tuple

POLL_SECONDS = 0.2


class RemoteFollow:
    """A server's SSE log stream as the pages `print_logs` takes; afterwards `end_state` and
    `lost_engine_pid` as `query.logs.LogFollow` has them."""

    def __init__(self, api: RemoteApi, execution_id: str, params: Mapping[str, Any]) -> None:
        self.api = api
        self.path = f"/executions/{execution_id}/logs/follow"
        self.params = params
        self.end_state: str | None = None
        self.lost_engine_pid: int | None = None

    async def batches(self) -> AsyncIterator[list]:
        async for event, event_id, data in self.api.follow(self.path, self.params):
            if event == "end":
                end = self.api.document(data, "log_end", media="text/event-stream")
                self.end_state, self.lost_engine_pid = end["state"], end.get("engine_lost")
                return
            entry = self.api.document(data, "log_entry", media="text/event-stream")
            yield [log_tuple(int(event_id) if event_id.isdigit() else 0, entry)]


async def _log_pages(api: RemoteApi, execution_id: str, params: Mapping[str, Any]) -> AsyncIterator[list]:
    async for entries in api.pages(f"/executions/{execution_id}/logs", "log_page", "entries", "after", params):
        yield [log_tuple(0, entry) for entry in entries]


async def logs(url: str, execution_id: str, task, level, since, source, as_json, jsonl, follow, raw) -> int:
    params = {"task": task, "level": level, "since": since, "source": source}
    params = {k: v for k, v in params.items() if v is not None}
    async with RemoteApi(url) as api:
        try:
            # resolve a prefix (and check the task) first: the printers need the full id
            document = await api.call("GET", f"/executions/{execution_id}", "execution")
            resolved = document["execution"]["id"]
            lost_pid = None
            if follow:
                follower = RemoteFollow(api, resolved, params)
                printed = await print_logs(follower.batches(), resolved, as_json, jsonl, raw)
                lost_pid = follower.lost_engine_pid
            else:
                printed = await print_logs(_log_pages(api, resolved, params), resolved, as_json, jsonl, raw)
            ended = await api.call("GET", f"/executions/{resolved}", "execution")  # entries lost while it ran count too
            return _logs_end(printed, resolved, task, lost_pid, ended["execution"].get("log_entries_lost") or 0)
        except RemoteNotFound as exc:
            return _fail(str(exc))


async def inspect(url: str, execution_id: str, task, show_inputs, timeline, audit, as_json, truncate) -> int:
    from kestra_trio.cli import formatting
    from kestra_trio.query.documents import snapshot_from_document

    async with RemoteApi(url) as api:
        try:
            document = await api.call("GET", f"/executions/{execution_id}", "execution", params={"task": task})
            if as_json:
                sys.stdout.write(formatting.dumps_pretty(document) + "\n")
                sys.stdout.flush()
                return EXIT_OK
            if task is not None:  # the view shows the whole execution too (task count, needs' states)
                whole = await api.call("GET", f"/executions/{document['execution']['id']}", "execution")
                document = {**whole, "task_logs": document.get("task_logs", [])}
        except RemoteNotFound as exc:
            return _fail(str(exc))
    _print_inspect(snapshot_from_document(document, task), task, show_inputs, timeline, audit, False, truncate)
    return EXIT_OK


async def list_(url: str, workflow, state, limit: int, as_json: bool) -> int:
    from kestra_trio.cli import formatting
    from kestra_trio.cli.console import stdout_console
    from kestra_trio.observability.records import now_ms
    from kestra_trio.query.documents import execution_from_document

    items: list[dict] = []
    async with RemoteApi(url) as api:
        params = {"workflow": workflow, "state": state, "limit": min(limit, 1000)}
        pages = api.pages("/executions", "executions", "executions", "cursor", params)
        async for page in pages:
            items += page
            if len(items) >= limit:
                break
        await pages.aclose()
    items = items[:limit]
    if as_json:
        sys.stdout.write(formatting.dumps_pretty(items) + "\n")
        sys.stdout.flush()
    elif items:
        rows = [execution_from_document(item) for item in items]
        counts = {item["id"]: item.get("task_states") or {} for item in items}
        stdout_console().print(formatting.execution_list_table(rows, counts, now_ms()))
    if not items:
        _say("No executions found")
    return EXIT_OK


async def _state(api: RemoteApi, execution_id: str) -> str:
    return (await api.call("GET", f"/executions/{execution_id}", "execution"))["execution"]["state"]


async def cancel(url: str, execution_id: str, reason: str | None, wait: float) -> int:
    import trio

    async with RemoteApi(url) as api:
        try:
            answer = await api.call("POST", f"/executions/{execution_id}/cancel", "cancelled",
                                    body={"reason": reason} if reason is not None else {})
        except RemoteNotFound as exc:
            return _fail(str(exc))
        resolved, shown = answer["id"], _arg(answer["id"])
        if answer["finished"]:
            _say(f"Execution {shown} already finished: {_arg(answer['state'])}", stream=sys.stdout)
            return EXIT_OK
        _say(f"Cancel requested for execution {shown}" + ("" if answer["requested"] else " (it was already requested)"),
             stream=sys.stdout)
        if answer.get("engine_gone"):
            wait = 0
        state = answer["state"]
        with trio.move_on_after(wait):
            while (state := await _state(api, resolved)) not in TERMINAL:
                await trio.sleep(POLL_SECONDS)
        if state not in TERMINAL:
            state = await _state(api, resolved)
    say_cancel_outcome(shown, _arg(state))
    return EXIT_OK


async def start(url: str, workflow: str, inputs: dict[str, str], wait: bool, raw: bool) -> int:
    async with RemoteApi(url) as api:
        try:
            started = await api.call("POST", "/executions", "started", body={"workflow": workflow, "inputs": inputs})
        except RemoteNotFound as exc:
            return _fail(str(exc))
        execution_id = started["id"]
        _say(f"Execution {_arg(execution_id)} queued for workflow {_arg(started['workflow_id'])} "
             f"(revision {started.get('workflow_revision')})", stream=sys.stdout)
        if not wait:
            return EXIT_OK
        follower = RemoteFollow(api, execution_id, {})
        await print_logs(follower.batches(), execution_id, False, False, raw)
    state = follower.end_state or "UNKNOWN"
    _say(f"Execution {_arg(execution_id)} finished: {_arg(state)}", stream=sys.stdout)
    return EXIT_OK if state == "SUCCESS" else EXIT_FAILURE
