"""The handlers of /api/v1 and their declarations (`OPERATIONS`): each reads through the query
layer and answers the documents the CLI prints (`query.documents`), so `inspect --json` and
`GET /executions/{id}` cannot differ."""

from __future__ import annotations

from starlette.responses import Response

from kestra_trio import __version__
from kestra_trio.errors import ExecutionNotFound, InputError, UsageError, WorkflowError
from kestra_trio.server.http.call import Call
from kestra_trio.server.http.context import ApiContext
from kestra_trio.server.http.errors import ApiError, bad_request, echo, invalid, not_found
from kestra_trio.server.http.responses import json_response
from kestra_trio.server.http.spec import Answer, Operation, Param

# ------------------------------------------------------------------ health, workflows


async def health(ctx: ApiContext, call: Call) -> Response:
    status = "stopping" if ctx.stopping else "ok"
    return json_response(call.request, {"status": status, "version": __version__}, 503 if ctx.stopping else 200)


async def list_workflows(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.query.documents import workflow_document

    rows = await ctx.workflows.list()
    return json_response(call.request, {"workflows": [workflow_document(row) for row in rows]})


async def get_workflow(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.server.http.workflows import workflow_detail

    row = await ctx.workflows.get(call.path["workflow_id"])
    if row is None:
        raise workflow_not_found(call.path["workflow_id"])
    revision = call.query.get("revision", row.revision)
    stored = await ctx.workflows.revision(row.id, revision)
    if stored is None:
        raise not_found(f"workflow {row.id} has no revision {revision} (its latest is {row.revision})")
    return json_response(call.request, await workflow_detail(ctx, row, stored))


async def workflow_revisions(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.server.http.workflows import revisions_shown

    workflow_id = call.path["workflow_id"]
    rows = await ctx.workflows.history(workflow_id)
    if not rows:
        raise workflow_not_found(workflow_id)
    return json_response(call.request, {"revisions": await revisions_shown(ctx, rows)})


async def enable_workflow(ctx: ApiContext, call: Call) -> Response:
    return await _set_enabled(ctx, call, True)


async def disable_workflow(ctx: ApiContext, call: Call) -> Response:
    return await _set_enabled(ctx, call, False)


async def _set_enabled(ctx: ApiContext, call: Call, enabled: bool) -> Response:
    """`workflow enable|disable ID`: triggers of a disabled workflow fire nothing, starts get 409."""
    workflow_id = call.path["workflow_id"]
    changed = await ctx.service.workflows.set_enabled(workflow_id, enabled)
    if changed is None:
        raise workflow_not_found(workflow_id)
    ctx.log.info("workflow enabled" if enabled else "workflow disabled", workflow=workflow_id, changed=changed)
    return json_response(call.request, {"id": workflow_id, "enabled": enabled, "changed": changed})


def workflow_not_found(workflow_id: str) -> ApiError:
    return not_found(f"Workflow not found: {echo(workflow_id)} (`kestra-trio workflow list` shows the registry)")


# ------------------------------------------------------------------ executions


async def start_execution(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.service.inputs import given_inputs
    from kestra_trio.storage.executions import DEFAULT_QUEUE

    body = call.body
    row = await ctx.workflows.get(body["workflow"])
    if row is None:
        raise workflow_not_found(body["workflow"])
    if not row.enabled:
        raise ApiError(409, "disabled", f"workflow {row.id!r} is disabled; `kestra-trio workflow enable {row.id}` to run it")
    workflow = await _workflow(ctx, row.id, row.revision)
    try:
        inputs = given_inputs(workflow, body.get("inputs") or {})
    except InputError as exc:
        raise invalid(str(exc)) from None
    labels = body.get("labels") or {}
    from kestra_trio.model.flow_checks import label_problem

    problems = [p for p in (label_problem(key, value) for key, value in labels.items()) if p is not None]
    if problems:
        raise invalid("; ".join(problems[:5]))
    execution_id = await ctx.service.enqueue(
        workflow, inputs, trigger_type="api", workflow_path=row.source_path, workflow_revision=row.revision,
        queue=DEFAULT_QUEUE, labels={**workflow.labels, **labels},
    )
    ctx.log.info("execution created", execution_id=execution_id, workflow=row.id, revision=row.revision, trigger="api")
    document = {"id": execution_id, "state": "QUEUED", "workflow_id": row.id, "workflow_revision": row.revision}
    return json_response(call.request, document, 201, {"Location": f"/api/v1/executions/{execution_id}"})


async def _workflow(ctx: ApiContext, workflow_id: str, revision: int):
    try:
        return await ctx.service.workflow_at(workflow_id, revision)
    except (LookupError, WorkflowError) as exc:
        raise ApiError(409, "workflow_unloadable", f"workflow {workflow_id!r} revision {revision} cannot be loaded: {exc}") from None


async def list_executions(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.observability.records import now_ms
    from kestra_trio.query.documents import execution_list_document
    from kestra_trio.query.executions import ExecutionFilter
    from kestra_trio.query.executions import list_executions as page_of

    query = call.query
    try:
        where = ExecutionFilter(
            query.get("workflow"), ExecutionFilter.parse_state(query.get("state")),
            ExecutionFilter.parse_labels(query.get("label")),
        )
        page = await page_of(ctx.db, where, limit=query.get("limit", 20), cursor=query.get("cursor"))
    except UsageError as exc:  # a bad state or cursor
        raise bad_request(str(exc)) from None
    items = execution_list_document(page.rows, page.task_counts, now_ms())
    return json_response(call.request, {"executions": items, "next_cursor": page.next_cursor})


async def get_execution(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.inspection.inspector import ExecutionInspector, TaskNotFound
    from kestra_trio.query.documents import inspect_document

    task = call.query.get("task")
    try:
        snapshot = await ExecutionInspector(ctx.db).snapshot(call.path["execution_id"], task_id=task, log_tail=20)
    except ExecutionNotFound as exc:
        raise execution_not_found(exc, call.path["execution_id"]) from None
    except TaskNotFound as exc:
        raise not_found(f"Task not found: {echo(task or '')} in execution {exc.execution_id}") from None
    return json_response(call.request, inspect_document(snapshot, task_id=task))


async def _resolve(ctx: ApiContext, execution_id: str) -> str:
    from kestra_trio.storage.executions import ExecutionStore

    try:
        return await ExecutionStore(ctx.db).resolve_id(execution_id)
    except ExecutionNotFound as exc:
        raise execution_not_found(exc, execution_id) from None


def execution_not_found(exc: ExecutionNotFound, given: str) -> ApiError:
    from kestra_trio.query.executions import not_found_message

    return not_found(not_found_message(exc, given, shown=echo))


async def cancel_execution(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.service.cancel import request_cancel

    resolved = await _resolve(ctx, call.path["execution_id"])
    reason = (call.body or {}).get("reason")
    answer = await request_cancel(ctx.service.db, resolved, by="user", reason=reason)
    execution = answer.execution
    ctx.log.info("cancel requested", execution_id=resolved, created=answer.created)
    return json_response(call.request, {
        "id": resolved, "state": execution.state, "requested": answer.created and not execution.is_terminal,
        "finished": execution.is_terminal, "engine_gone": answer.engine_gone,
    }, 202 if not execution.is_terminal else 200)


async def restart_execution(ctx: ApiContext, call: Call) -> Response:
    """`execution restart`: only what failed or did not run runs again, in the same execution,
    in this server (the successful tasks keep their stored outputs)."""
    from kestra_trio.engine.restart import NothingToRestart, UnknownTask
    from kestra_trio.errors import IllegalTransition

    resolved = await _resolve(ctx, call.path["execution_id"])
    body = call.body or {}
    try:
        workflow = await ctx.service.restart(
            resolved, from_task=body.get("from_task"), by="user", reason=body.get("reason"),
        )
    except UnknownTask as exc:
        raise invalid(f"from_task: {exc}") from None
    except NothingToRestart as exc:
        raise ApiError(409, "not_restartable", f"{exc} (give from_task to run a task and what follows again)") from None
    except (UsageError, IllegalTransition) as exc:
        raise ApiError(409, "not_restartable", str(exc)) from None
    ctx.service.start_soon(ctx.service.wait, resolved)  # nobody waits over HTTP: take its result
    ctx.log.info("execution restarted", execution_id=resolved, from_task=body.get("from_task"))
    return json_response(call.request, {"id": resolved, "state": "QUEUED", "workflow_id": workflow.id}, 202,
                         {"Location": f"/api/v1/executions/{resolved}"})


async def execution_logs(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.query.documents import log_json_object
    from kestra_trio.query.logs import log_page

    where = await log_filter(ctx, call)
    try:
        page = await log_page(ctx.db, where, limit=call.query.get("limit", 1000), cursor=call.query.get("after"))
    except UsageError as exc:
        raise bad_request(str(exc)) from None
    entries = [log_json_object(where.execution_id, *row[1:]) for row in page.rows]
    return json_response(call.request, {"entries": entries, "next_cursor": page.next_cursor})


async def log_filter(ctx: ApiContext, call: Call):
    """The CLI's `execution logs` filters from the query string, checked with the same words."""
    from kestra_trio.observability.records import now_ms
    from kestra_trio.query.log_filters import parse_levels, parse_since
    from kestra_trio.storage import reads
    from kestra_trio.storage.logs import LogFilter

    resolved = await _resolve(ctx, call.path["execution_id"])
    query = call.query
    try:
        levels = parse_levels(query["level"]) if "level" in query else ()
        since = parse_since(query["since"]) if "since" in query else None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    task = query.get("task")
    if task is not None and not await ctx.db.run(reads.task_exists, resolved, task):
        raise not_found(f"Task not found: {echo(task)} in execution {resolved}")
    since_ms = now_ms() - int(since * 1000) if since is not None else None
    return LogFilter(resolved, task, levels, since_ms, query.get("source") or None)


async def follow_logs(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.server.http.sse import follow_response

    where = await log_filter(ctx, call)
    last = call.header("last-event-id")
    after_id = None
    if last is not None and last.strip():
        from kestra_trio.config import ascii_int
        from kestra_trio.query.cursors import MAX_KEY_INT

        try:
            after_id = ascii_int(last.strip())
        except ValueError:
            after_id = -1
        if not 0 <= after_id <= MAX_KEY_INT:  # checked before the stream's first byte: a 400, not a cut stream
            raise bad_request("Last-Event-ID must be the id of an entry this stream sent")
    return follow_response(ctx, where, after_id)


# ------------------------------------------------------------------ webhooks, metrics, the document


async def webhook(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.server.http.webhooks import fire_webhook

    return await fire_webhook(ctx, call)


async def metrics(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.server.http.metrics import PROMETHEUS_TEXT, metrics_text

    return Response(await metrics_text(ctx), media_type=PROMETHEUS_TEXT)


async def openapi(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.server.http.spec import openapi_document

    return json_response(call.request, openapi_document(OPERATIONS))


# ------------------------------------------------------------------ declarations

WORKFLOW_ID = Param("workflow_id", "path", "workflow id")
EXECUTION_ID = Param("execution_id", "path", "execution id, or a unique prefix of at least 4 characters")
LOG_FILTERS = (
    Param("task", "query", "only this task's entries"),
    Param("level", "query", "only these levels: DEBUG, INFO, WARN, ERROR; several with commas"),
    Param("since", "query", "only entries newer than this: 30s, 5m, 2h, 1d"),
    Param("source", "query", "only entries whose source starts with this prefix (plugin, scheduler)"),
)
NOT_FOUND = Answer("no such execution (or task)", "Error")

OPERATIONS: list[Operation] = [
    Operation("GET", "/health", "health", "Liveness: 200 while serving, 503 while shutting down", health,
              {200: Answer("serving", "Health"), 503: Answer("shutting down", "Health")}, "server", public=True),
    Operation("GET", "/workflows", "listWorkflows", "The workflows of the registry", list_workflows,
              {200: Answer("every workflow, by id", "WorkflowList")}, "workflows"),
    Operation("GET", "/workflows/{workflow_id}", "getWorkflow",
              "A workflow: revision (its source), inputs, triggers, next fire times",
              get_workflow, {200: Answer("the workflow", "WorkflowDetail"),
                             404: Answer("no such workflow or revision", "Error")},
              "workflows", params=(WORKFLOW_ID, Param("revision", "query", "this revision instead of the current one",
                                                      {"type": "integer", "minimum": 1, "maximum": 2**31}))),
    Operation("GET", "/workflows/{workflow_id}/revisions", "workflowRevisions", "Every revision of a workflow, oldest first",
              workflow_revisions, {200: Answer("what `workflow history --json` prints", "RevisionList"),
                                   404: Answer("no such workflow", "Error")},
              "workflows", params=(WORKFLOW_ID,)),
    Operation("POST", "/workflows/{workflow_id}/enable", "enableWorkflow", "Enable a workflow (starts and triggers)",
              enable_workflow, {200: Answer("enabled", "EnabledAnswer"), 404: Answer("no such workflow", "Error")},
              "workflows", params=(WORKFLOW_ID,), body_required=False),
    Operation("POST", "/workflows/{workflow_id}/disable", "disableWorkflow",
              "Disable a workflow: its triggers fire nothing, starts get 409", disable_workflow,
              {200: Answer("disabled", "EnabledAnswer"), 404: Answer("no such workflow", "Error")},
              "workflows", params=(WORKFLOW_ID,), body_required=False),
    Operation("POST", "/executions", "startExecution", "Start an execution of a registry workflow (its current revision)",
              start_execution,
              {201: Answer("queued; `Location` is its URL", "Started"), 404: Answer("no such workflow", "Error"),
               409: Answer("the workflow is disabled, or its revision no longer loads", "Error"),
               415: Answer("the body is not JSON", "Error"),
               422: Answer("unknown field, or inputs refused with `run --input`'s messages", "Error"),
               503: Answer("the server is shutting down", "Error")},
              "executions", body="StartExecution", starts=True),
    Operation("GET", "/executions", "listExecutions", "Executions, newest first, one page at a time", list_executions,
              {200: Answer("a page; pass `next_cursor` as `cursor` for the next", "ExecutionPage")}, "executions",
              params=(Param("workflow", "query", "only this workflow id"),
                      Param("state", "query", "only this state: QUEUED, PENDING, WAITING, RUNNING, SUCCESS, FAILED, CANCELLED"),
                      Param("label", "query", "only executions with this label, `KEY=VALUE` (repeat it: all must match)",
                            {"type": "array", "items": {"type": "string"}}),
                      Param("limit", "query", "page size", {"type": "integer", "minimum": 1, "maximum": 1000}),
                      Param("cursor", "query", "`next_cursor` of the previous page"))),
    Operation("GET", "/executions/{execution_id}", "getExecution", "An execution: what `execution inspect --json` prints",
              get_execution, {200: Answer("the execution, its tasks, attempts and audit trail", "ExecutionDetail"),
                              404: NOT_FOUND},
              "executions", params=(EXECUTION_ID, Param("task", "query", "this one task in full, with its last 20 log lines"))),
    Operation("POST", "/executions/{execution_id}/cancel", "cancelExecution", "Ask for an execution to stop",
              cancel_execution,
              {202: Answer("requested (idempotent)", "CancelAnswer"), 200: Answer("it had already finished", "CancelAnswer"),
               404: NOT_FOUND, 422: Answer("unknown field or a reason too long", "Error")},
              "executions", params=(EXECUTION_ID,), body="CancelExecution", body_required=False),
    Operation("POST", "/executions/{execution_id}/restart", "restartExecution",
              "Run again what failed or did not run (or `from_task` and what follows), in the same execution",
              restart_execution,
              {202: Answer("queued again; `Location` is its URL", "Started"), 404: NOT_FOUND,
               409: Answer("it is still running, or nothing is left to run", "Error"),
               422: Answer("unknown field, or `from_task` is not a task of the workflow", "Error"), 503: Answer("the server is shutting down", "Error")},
              "executions", params=(EXECUTION_ID,), body="RestartExecution", body_required=False, starts=True),
    Operation("GET", "/executions/{execution_id}/logs", "executionLogs", "A page of an execution's log, oldest first",
              execution_logs, {200: Answer("a page; pass `next_cursor` as `after` for the next", "LogPage"), 404: NOT_FOUND},
              "logs", params=(EXECUTION_ID, *LOG_FILTERS,
                              Param("after", "query", "`next_cursor` of the previous page"),
                              Param("limit", "query", "page size", {"type": "integer", "minimum": 1, "maximum": 10000}))),
    Operation("GET", "/executions/{execution_id}/logs/follow", "followLogs",
              "Follow an execution's log as Server-Sent Events until it ends", follow_logs,
              {200: Answer("`id:` is the entry's id, `data:` a LogEntry; `Last-Event-ID` resumes after it; a last "
                           "`event: end` with `{\"state\": ...}` comes once every line is committed", None,
                           "text/event-stream"), 404: NOT_FOUND},
              "logs", params=(EXECUTION_ID, *LOG_FILTERS,
                              Param("Last-Event-ID", "header", "resume after this entry id (browsers send it on reconnect)"))),
    Operation("POST", "/webhooks/{workflow_id}/{key}", "webhook", "Start a workflow from its webhook trigger", webhook,
              {201: Answer("queued", "Started"), 404: Answer("no such workflow or webhook key", "Error"),
               409: Answer("the workflow is disabled, or its revision no longer loads", "Error"),
               422: Answer("the trigger's inputs do not fit the workflow", "Error"),
               503: Answer("the server is shutting down", "Error")},
              "triggers", params=(Param("workflow_id", "path", "workflow id"),
                                  Param("key", "path", "the trigger's `key:`")),
              body="WebhookBody", body_required=False, public=True, starts=True,
              description="Public (the key is the credential). The JSON body becomes `{{ trigger.body }}`, the request's "
                          "headers (minus authorization and cookies) `{{ trigger.headers }}`."),
    Operation("GET", "/metrics", "metrics", "Prometheus metrics", metrics,
              {200: Answer("Prometheus text format 0.0.4", None, "text/plain")}, "server"),
    Operation("GET", "/openapi.json", "openapi", "This document", openapi,
              {200: Answer("OpenAPI 3.1", None)}, "server", public=True),
]
