"""`POST /webhooks/{workflow_id}/{key}`: a workflow's webhook trigger starts an execution.

The key is the credential: it is compared in constant time (`hmac.compare_digest` on both
sides' SHA-256, so neither the content nor the length of a wrong key shows in the timing),
and a wrong key, an unknown workflow and a workflow without webhook triggers all answer the
same 404 — a caller learns nothing about which workflows exist.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from starlette.responses import Response

from kestra_trio.errors import InputError, WorkflowError
from kestra_trio.model.template_errors import TemplateError
from kestra_trio.model.workflow import WebhookTrigger, Workflow
from kestra_trio.server.http.call import Call
from kestra_trio.server.http.context import ApiContext
from kestra_trio.server.http.errors import ApiError, invalid, not_found
from kestra_trio.server.http.responses import json_response

#: headers a trigger never sees: the connection's own bookkeeping, which says nothing about the event
CONNECTION_HEADERS = frozenset({
    "host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade", "accept-encoding",
})
#: a header whose name says it carries a credential (`Authorization`, `Cookie`, `X-Gitlab-Token`,
#: `X-Api-Key`, `X-Auth-*`, `X-Session-Id` ...): kept by name, its value `***SECRET***`.
#: Signature headers (`X-Hub-Signature-256`) are not credentials — a workflow checks the body with them.
CREDENTIAL_HEADER = re.compile(r"token|secret|passw(?:or)?d|api[-_]?key|auth|cookie|session|credential|private")
HIDDEN_VALUE = "***SECRET***"
MAX_HEADERS = 50
MAX_HEADER_CHARS = 1000


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def key_of(trigger: WebhookTrigger, secrets: dict[str, str]) -> str | None:
    """The trigger's key: as written, or the secret it names (None: that secret is not set)."""
    name = trigger.key_secret
    return trigger.key if name is None else secrets.get(name)


def matching_trigger(workflow: Workflow, key: str, secrets: dict[str, str]) -> WebhookTrigger | None:
    """The enabled webhook trigger whose key is `key`; every trigger is compared (no early exit)."""
    given = _digest(key)
    found = None
    for trigger in workflow.triggers:
        if not isinstance(trigger, WebhookTrigger) or not trigger.enabled:
            continue
        expected = key_of(trigger, secrets)
        if expected is not None and hmac.compare_digest(_digest(expected), given) and found is None:
            found = trigger
    return found


def selected_headers(call: Call) -> dict[str, str]:
    """The request's headers as `{{ trigger.headers }}` and the stored trigger data hold them:
    names lower-case, credentials masked, connection headers left out, bounded."""
    headers: dict[str, str] = {}
    for name, value in call.request.headers.items():  # Starlette gives names lower-case
        if name in CONNECTION_HEADERS or len(headers) >= MAX_HEADERS:
            continue
        headers[name] = HIDDEN_VALUE if CREDENTIAL_HEADER.search(name) else value[:MAX_HEADER_CHARS]
    return headers


async def fire_webhook(ctx: ApiContext, call: Call) -> Response:
    from kestra_trio.service.inputs import trigger_inputs
    from kestra_trio.storage.executions import DEFAULT_QUEUE

    workflow_id, key = call.path["workflow_id"], call.path["key"]
    wrong = not_found("no webhook for this workflow and key")
    row = await ctx.workflows.get(workflow_id)
    if row is None:
        raise wrong
    try:
        workflow = await ctx.service.workflow_at(row.id, row.revision)
    except (LookupError, WorkflowError):
        raise wrong from None
    trigger = matching_trigger(workflow, key, ctx.secrets)
    if trigger is None:
        ctx.log.warning("webhook refused: wrong key", workflow=workflow_id)
        raise wrong
    if not row.enabled:
        raise ApiError(409, "disabled", f"workflow {row.id!r} is disabled; its webhook starts nothing")
    data: dict[str, Any] = {"id": trigger.id, "body": call.body, "headers": selected_headers(call)}
    try:
        inputs = trigger_inputs(workflow, trigger, data, revision=row.revision)
    except (InputError, TemplateError) as exc:
        raise invalid(str(exc)) from None
    execution_id = await ctx.service.enqueue(
        workflow, inputs, trigger_type="webhook", workflow_path=row.source_path, workflow_revision=row.revision,
        queue=DEFAULT_QUEUE, trigger=data,
    )
    ctx.log.info("execution created", execution_id=execution_id, workflow=row.id, revision=row.revision,
                 trigger="webhook", trigger_id=trigger.id)
    document = {"id": execution_id, "state": "QUEUED", "workflow_id": row.id, "workflow_revision": row.revision}
    return json_response(call.request, document, 201, {"Location": f"/api/v1/executions/{execution_id}"})
