"""The HTTP API in-process (ASGI, no socket) over a real service: real SQLite file, real plugin
processes. Every error path answers one JSON line with a documented status, never a trace."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import httpx
import pytest
import trio

from kestra_trio.engine.context import EngineOptions
from kestra_trio.plugin_runtime.registry import PluginRegistry
from kestra_trio.query.documents import inspect_document
from kestra_trio.inspection.inspector import ExecutionInspector
from kestra_trio.secrets.masking import Masker
from kestra_trio.server.http.app import build_app
from kestra_trio.server.http.context import ApiContext
from kestra_trio.server.log import ServerLog
from kestra_trio.service.app import ServiceConfig, open_service
from kestra_trio.service.registry import load_file
from kestra_trio.storage.executions import DEFAULT_QUEUE
from kestra_trio.storage.tokens import TokenStore

REGISTRY = PluginRegistry.discover()
SECRET = "s3cr3t-value-for-tests"
KEY = "webhook-key-0123456789"

HELLO = """
id: hello
namespace: demo
inputs:
  - {name: who, type: string, default: world}
  - {name: count, type: integer, default: 2}
triggers:
  - {id: hook, type: webhook, key: "%s", inputs: {who: "{{ trigger.body.who }}"}}
  - {id: by-secret, type: webhook, key: "{{ secrets.HOOK_KEY }}"}
  - {id: nightly, type: cron, cron: "0 3 * * *", timezone: Europe/Paris}
tasks:
  - id: say
    type: core/shell.run
    inputs:
      command: 'for i in $(seq 1 $N); do echo "hello $WHO $i"; done'
      env: {WHO: "{{ inputs.who }}", N: "{{ inputs.count }}"}
""" % KEY


class Api:
    def __init__(self, client: httpx.AsyncClient, ctx: ApiContext, log_lines: list[str]) -> None:
        self.client = client
        self.ctx = ctx
        self.log_lines = log_lines

    async def start(self, **body) -> str:
        response = await self.client.post("/api/v1/executions", json={"workflow": "hello", **body})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def finished(self, execution_id: str) -> dict:
        with trio.fail_after(60):
            while True:
                document = (await self.client.get(f"/api/v1/executions/{execution_id}")).json()
                if document["execution"]["state"] in ("SUCCESS", "FAILED", "CANCELLED"):
                    return document
                await trio.sleep(0.05)


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)

    def flush(self) -> None:
        pass


@pytest.fixture
async def api(tmp_path: Path):
    workflow_file = tmp_path / "hello.yaml"
    workflow_file.write_text(textwrap.dedent(HELLO))
    environ = {"KESTRA_TRIO_SECRET_TOKEN": SECRET, "KESTRA_TRIO_SECRET_HOOK_KEY": "secret-webhook-key-42"}
    options = EngineOptions(handle_signals=False, environ=environ)
    config = ServiceConfig(tmp_path / "k.db", REGISTRY, options, queues=(DEFAULT_QUEUE,))
    async with open_service(config) as service:
        await service.workflows.apply([load_file(workflow_file, REGISTRY).source])
        stream = _Lines()
        secrets = {"TOKEN": SECRET, "HOOK_KEY": "secret-webhook-key-42"}
        ctx = ApiContext(service, ServerLog("json", stream), Masker(secrets.values()), secrets=secrets,
                         max_body_bytes=64 * 1024)
        transport = httpx.ASGITransport(app=build_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            yield Api(client, ctx, stream.lines)


async def test_start_runs_the_registry_revision_and_get_is_the_inspect_document(api: Api) -> None:
    execution_id = await api.start(inputs={"who": "api", "count": 3})
    document = await api.finished(execution_id)
    assert document["execution"]["state"] == "SUCCESS"
    assert document["execution"]["workflow_revision"] == 1
    assert document["execution"]["trigger"] == "api"
    assert document["execution"]["inputs"] == {"who": "api", "count": 3}
    snapshot = await ExecutionInspector(api.ctx.service.db).snapshot(execution_id, log_tail=20)
    expected = inspect_document(snapshot)
    assert {k: v for k, v in document.items() if k != "generated_at"} == {
        k: v for k, v in expected.items() if k != "generated_at"
    }


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        ('{"workflow": "hello", "bogus": 1}', {}, 422, "unknown field 'bogus' (allowed: workflow, inputs, labels)"),
        ('{"workflow": "hello", "inputs": {"count": "x"}}', {}, 422, "input 'count' must be an integer, got 'x'"),
        ('{"workflow": "hello", "inputs": {"nope": 1}}', {}, 422, "nope"),
        ('{"workflow": ', {}, 400, "the body is not valid JSON"),
        ('{"workflow": "hello"}', {"content-type": "text/plain"}, 415, "the body must be JSON"),
        ('{"workflow": "nope"}', {}, 404, "Workflow not found: nope"),
        ('{"inputs": {}}', {}, 422, "'workflow' is required"),
        ('{"workflow": 3}', {}, 422, "workflow must be text"),
        ("[1, 2]", {}, 422, "the body must be an object"),
        ("", {}, 400, "the request needs a JSON body"),
        ('{"workflow": "hello", "inputs": {"count": %s}}' % ("7" * 5000), {}, 400,
         "the body is not valid JSON: a number has too many digits (at most 4,300)"),
        ('{"workflow": "hello", "inputs": {"count": %d}}' % 2**63, {}, 422,
         "input 'count' must be an integer between -9223372036854775808 and 9223372036854775807, got '9223372036854775808'"),
        ('{"workflow": "hello", "inputs": {"count": "%s"}}' % ("9" * 3000), {}, 422, "got '9999999999999999999999999999999999999999'… (3,000 characters)"),
    ],
)
async def test_a_refused_start_is_one_clear_line(api: Api, body: str, headers: dict, status: int, message: str) -> None:
    response = await api.client.post(
        "/api/v1/executions", content=body, headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == {"error", "message"}
    assert message in answer["message"]
    assert "\n" not in answer["message"] and "Traceback" not in response.text and "sys." not in response.text
    assert len(answer["message"]) < 300
    assert (await api.client.get("/api/v1/executions")).json()["executions"] == []


async def test_a_body_over_the_limit_is_413_before_it_is_read_whole(api: Api) -> None:
    big = b'{"workflow": "hello", "inputs": {"who": "' + b"a" * (70 * 1024) + b'"}}'
    response = await api.client.post("/api/v1/executions", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": "too_large", "message": "the request body is larger than the server accepts (64Ki)"}


async def test_a_disabled_workflow_is_409(api: Api) -> None:
    await api.ctx.service.workflows.set_enabled("hello", False)
    response = await api.client.post("/api/v1/executions", json={"workflow": "hello"})
    assert response.status_code == 409
    assert "disabled" in response.json()["message"]


async def test_starts_are_503_while_the_server_drains_and_reads_still_work(api: Api) -> None:
    api.ctx.service.stopping.set()
    response = await api.client.post("/api/v1/executions", json={"workflow": "hello"})
    assert response.status_code == 503 and response.headers["retry-after"] == "30"
    webhook = await api.client.post(f"/api/v1/webhooks/hello/{KEY}", json={})
    assert webhook.status_code == 503
    assert (await api.client.get("/api/v1/health")).json()["status"] == "stopping"
    assert (await api.client.get("/api/v1/executions")).status_code == 200


async def test_list_pages_with_a_cursor_and_filters(api: Api) -> None:
    ids = [await api.start() for _ in range(3)]
    for execution_id in ids:
        await api.finished(execution_id)
    first = (await api.client.get("/api/v1/executions", params={"limit": 2})).json()
    assert [e["id"] for e in first["executions"]] == ids[::-1][:2]
    second = (await api.client.get("/api/v1/executions", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [e["id"] for e in second["executions"]] == ids[:1] and second["next_cursor"] is None
    assert first["executions"][0]["task_states"] == {"SUCCESS": 1}
    none = (await api.client.get("/api/v1/executions", params={"state": "failed"})).json()
    assert none == {"executions": [], "next_cursor": None}
    for params, message in [
        ({"state": "bogus"}, "Invalid state. Must be one of: QUEUED"),
        ({"cursor": "zzz"}, "the cursor is not one this server handed out"),
        ({"limit": "abc"}, "query parameter 'limit' must be a whole number"),
        ({"limit": "0"}, "query parameter 'limit' must be between 1 and 1000"),
        ({"bogus": "1"}, "unknown query parameter 'bogus'"),
    ]:
        response = await api.client.get("/api/v1/executions", params=params)
        assert response.status_code == 400 and message in response.json()["message"], (params, response.text)


async def test_labels_given_at_start_are_stored_and_filter_the_list(api: Api) -> None:
    team = await api.start(labels={"team": "data", "env": "prod"})
    other = await api.start(labels={"team": "web"})
    for execution_id in (team, other):
        await api.finished(execution_id)
    document = (await api.client.get(f"/api/v1/executions/{team}")).json()
    assert document["execution"]["labels"] == {"team": "data", "env": "prod"}
    assert document["execution"]["trigger_data"] is None  # labels are the execution's, not the trigger's
    listed = (await api.client.get("/api/v1/executions", params={"label": "team=data"})).json()
    assert [e["id"] for e in listed["executions"]] == [team]
    both = (await api.client.get("/api/v1/executions", params=[("label", "team=data"), ("label", "env=dev")])).json()
    assert both["executions"] == []
    bad = await api.client.post("/api/v1/executions", json={"workflow": "hello", "labels": {"bad key!": "x"}})
    assert bad.status_code == 422 and "label key 'bad key!'" in bad.json()["message"], bad.text
    undecodable = await api.client.post(  # a lone surrogate in JSON: read as U+FFFD, like every body
        "/api/v1/executions", content=b'{"workflow": "hello", "labels": {"team": "caf\\udce9"}}',
        headers={"content-type": "application/json"},
    )
    assert undecodable.status_code == 201, undecodable.text
    stored = (await api.client.get(f"/api/v1/executions/{undecodable.json()['id']}")).json()
    assert stored["execution"]["labels"] == {"team": "caf\ufffd"}
    twice = await api.client.get("/api/v1/executions", params=[("label", "team=data"), ("label", "team=web")])
    assert twice.status_code == 400 and "--label team is given twice" in twice.json()["message"], twice.text
    response = await api.client.get("/api/v1/executions", params={"label": "no-equals-sign"})
    assert response.status_code == 400 and "KEY=VALUE" in response.json()["message"], response.text


async def test_logs_page_filters_and_follow_resumes_after_last_event_id(api: Api) -> None:
    execution_id = await api.start(inputs={"who": "logs", "count": 5})
    await api.finished(execution_id)
    page = (await api.client.get(f"/api/v1/executions/{execution_id}/logs", params={"source": "plugin", "limit": 3})).json()
    assert [e["message"] for e in page["entries"]] == ["hello logs 1", "hello logs 2", "hello logs 3"]
    rest = (await api.client.get(f"/api/v1/executions/{execution_id}/logs",
                                 params={"source": "plugin", "after": page["next_cursor"]})).json()
    assert [e["message"] for e in rest["entries"]] == ["hello logs 4", "hello logs 5"]
    bad = await api.client.get(f"/api/v1/executions/{execution_id}/logs", params={"level": "loud"})
    assert bad.status_code == 400 and bad.json()["message"] == "Invalid log level. Must be one of: DEBUG, INFO, WARN, ERROR"
    missing = await api.client.get(f"/api/v1/executions/{execution_id}/logs", params={"task": "nope"})
    assert missing.status_code == 404 and missing.json()["message"] == f"Task not found: nope in execution {execution_id}"

    events = parse_sse((await api.client.get(f"/api/v1/executions/{execution_id}/logs/follow")).text)
    entries = [e for e in events if e["event"] == "message"]
    assert [int(e["id"]) for e in entries] == sorted(int(e["id"]) for e in entries)
    assert events[-1] == {"event": "end", "id": "", "data": '{"state": "SUCCESS"}'}
    middle = entries[3]["id"]
    resumed = parse_sse((await api.client.get(f"/api/v1/executions/{execution_id}/logs/follow",
                                              headers={"Last-Event-ID": middle})).text)
    assert [e["id"] for e in resumed if e["event"] == "message"] == [e["id"] for e in entries[4:]]
    assert resumed[-1]["event"] == "end"
    garbage = await api.client.get(f"/api/v1/executions/{execution_id}/logs/follow", headers={"Last-Event-ID": "x"})
    assert garbage.status_code == 400


def _forged(json_text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(json_text.encode()).decode().rstrip("=")


BIG = "99999999999999999999999"


async def test_forged_cursors_and_last_event_ids_are_400_never_500(api: Api) -> None:
    execution_id = await api.start(inputs={"count": 1})
    await api.finished(execution_id)
    logs = f"/api/v1/executions/{execution_id}/logs"
    for path, params in [
        (logs, {"after": _forged(f"[{BIG},1]")}),
        (logs, {"after": _forged(f"[1,{BIG}]")}),
        (logs, {"after": _forged("[-1,1]")}),
        ("/api/v1/executions", {"cursor": _forged(f'[{BIG},"a"]')}),
        ("/api/v1/executions", {"cursor": _forged(f'[-{BIG},"a"]')}),
        ("/api/v1/executions", {"cursor": _forged('[1,"\\ud800"]')}),
    ]:
        response = await api.client.get(path, params=params)
        assert response.status_code == 400, (params, response.text)
        assert "the cursor is not one this server handed out" in response.json()["message"]
    for last in (BIG, "9223372036854775808", "-1", "9" * 5000):
        # the 400 comes before the stream starts: a client that reconnects on a cut stream would loop forever
        response = await api.client.get(f"{logs}/follow", headers={"Last-Event-ID": last})
        assert response.status_code == 400, (last, response.text)
        assert response.json()["message"] == "Last-Event-ID must be the id of an entry this stream sent"
    edge = parse_sse((await api.client.get(f"{logs}/follow", headers={"Last-Event-ID": str(2**63 - 1)})).text)
    assert [e["event"] for e in edge] == ["end"]  # the largest id is valid: nothing after it


async def test_cancel_of_an_execution_whose_engine_exited_after_it_finished_is_not_engine_gone(api: Api) -> None:
    import socket

    from factories import ExecutionFactory, task

    dead_pid = 2**22 + 12345  # above the default pid_max: no such process (a `kestra-trio run` that ended)
    ended = ExecutionFactory(api.ctx.service.db, "ended-run-0001")
    await ended.create([task("a")], engine_pid=dead_pid, engine_host=socket.gethostname())
    await ended.start()
    await ended.finish("SUCCESS", at=5)
    response = await api.client.post("/api/v1/executions/ended-run-0001/cancel", json={})
    assert response.status_code == 200
    assert response.json() == {"id": "ended-run-0001", "state": "SUCCESS", "requested": False, "finished": True,
                               "engine_gone": False}
    running = ExecutionFactory(api.ctx.service.db, "lost-run-0001")
    await running.create([task("a")], engine_pid=dead_pid, engine_host=socket.gethostname())
    await running.start()
    response = await api.client.post("/api/v1/executions/lost-run-0001/cancel", json={})
    assert response.status_code == 202 and response.json()["engine_gone"] is True  # still said where it matters


def parse_sse(text: str) -> list[dict]:
    events = []
    for block in text.split("\n\n"):
        fields = {"event": "message", "id": "", "data": ""}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name in fields:
                fields[name] = value
        if fields["data"]:
            events.append(fields)
    return events


async def test_secrets_are_masked_in_every_answer(api: Api) -> None:
    execution_id = await api.start(inputs={"who": SECRET, "count": 1})
    document = await api.finished(execution_id)
    assert SECRET not in json.dumps(document)
    for path in ("/api/v1/executions", f"/api/v1/executions/{execution_id}/logs",
                 f"/api/v1/executions/{execution_id}/logs/follow"):
        text = (await api.client.get(path)).text
        assert SECRET not in text and "***SECRET***" in text, path


async def test_a_webhook_starts_with_its_body_and_a_wrong_key_is_404(api: Api) -> None:
    response = await api.client.post(f"/api/v1/webhooks/hello/{KEY}", json={"who": "hook"},
                                      headers={"X-Event": "push", "Authorization": "Bearer hidden"})
    assert response.status_code == 201
    document = await api.finished(response.json()["id"])
    execution = document["execution"]
    assert execution["trigger"] == "webhook" and execution["inputs"]["who"] == "hook"
    assert execution["trigger_data"]["body"] == {"who": "hook"}
    assert execution["trigger_data"]["headers"]["x-event"] == "push"
    assert execution["trigger_data"]["headers"]["authorization"] == "***SECRET***"
    by_secret = await api.client.post("/api/v1/webhooks/hello/secret-webhook-key-42", json={})
    assert by_secret.status_code == 201
    for path in (f"/api/v1/webhooks/hello/{KEY}x", "/api/v1/webhooks/hello/short", f"/api/v1/webhooks/nope/{KEY}",
                 "/api/v1/webhooks/hello/{{ secrets.HOOK_KEY }}"):
        wrong = await api.client.post(path, json={})
        assert wrong.status_code == 404 and wrong.json()["message"] == "no webhook for this workflow and key", path
    big = await api.client.post(f"/api/v1/webhooks/hello/{KEY}", content=b"[" + b"1," * 40000 + b"1]",
                                headers={"content-type": "application/json"})
    assert big.status_code == 413


async def test_a_webhook_stores_credential_headers_masked_and_keeps_signatures(api: Api) -> None:
    sent = {"X-Gitlab-Token": "glt-supersecret", "X-Auth-User": "auth-user-secret", "Cookie": "sid=cookie-secret",
            "X-Session-Id": "session-secret", "X-Api_Key": "underscore-secret", "X-Client-Password": "pw-secret",
            "X-Hub-Signature-256": "sha256=abc123", "X-Signature": "sig-value", "X-GitHub-Event": "push"}
    response = await api.client.post(f"/api/v1/webhooks/hello/{KEY}", json={"who": "hook"}, headers=sent)
    assert response.status_code == 201, response.text
    execution_id = response.json()["id"]
    document = await api.finished(execution_id)
    headers = document["execution"]["trigger_data"]["headers"]
    for name in ("x-gitlab-token", "x-auth-user", "cookie", "x-session-id", "x-api_key", "x-client-password"):
        assert headers[name] == "***SECRET***", name  # the name stays: it says what the sender sent
    assert headers["x-hub-signature-256"] == "sha256=abc123" and headers["x-signature"] == "sig-value"
    assert headers["x-github-event"] == "push" and "host" not in headers and "content-length" not in headers
    served = (await api.client.get(f"/api/v1/executions/{execution_id}")).text + "\n".join(api.log_lines)
    for value in ("glt-supersecret", "auth-user-secret", "cookie-secret", "session-secret", "underscore-secret", "pw-secret"):
        assert value not in served, value


async def test_a_webhook_body_with_a_huge_number_is_refused_in_our_words(api: Api) -> None:
    response = await api.client.post(f"/api/v1/webhooks/hello/{KEY}", content=b'{"who": %s}' % (b"1" * 5000),
                                      headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"] == "the body is not valid JSON: a number has too many digits (at most 4,300)"


async def test_tokens_once_created_are_required_also_after_revoking(api: Api) -> None:
    assert (await api.client.get("/api/v1/executions")).status_code == 200
    store = TokenStore(api.ctx.service.db)
    token_id, token = await store.create("ci")
    refused = await api.client.get("/api/v1/executions")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert (await api.client.get("/api/v1/executions", headers={"Authorization": f"Bearer {token}x"})).status_code == 401
    assert (await api.client.get("/api/v1/executions", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    assert (await api.client.get("/api/v1/health")).status_code == 200  # public
    assert (await api.client.post(f"/api/v1/webhooks/hello/{KEY}", json={"who": "ci"})).status_code == 201  # the key is its credential
    await store.revoke(token_id)
    assert (await api.client.get("/api/v1/executions", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    assert (await api.client.get("/api/v1/executions")).status_code == 401
    assert token not in json.dumps([row.__repr__() for row in await store.list()])


async def test_an_unexpected_error_is_500_without_a_trace_and_logged(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("the disk is on fire at /secret/path")

    from kestra_trio.storage.workflows import WorkflowStore

    monkeypatch.setattr(WorkflowStore, "list", broken)
    response = await api.client.get("/api/v1/workflows")
    assert response.status_code == 500
    assert response.json() == {"error": "internal", "message": "internal error; the server log has the details"}
    assert any("the disk is on fire" in line and "Traceback" in line for line in api.log_lines)


async def test_an_internal_error_on_a_webhook_logs_its_route_not_its_key(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    from kestra_trio.storage.workflows import WorkflowStore

    monkeypatch.setattr(WorkflowStore, "get", broken)
    assert (await api.client.post(f"/api/v1/webhooks/hello/{KEY}", json={})).status_code == 500
    [line] = [line for line in api.log_lines if "boom" in line]
    assert KEY not in line and "/api/v1/webhooks/hello/***SECRET***" in line


async def test_workflow_detail_shows_triggers_without_the_webhook_key(api: Api) -> None:
    document = (await api.client.get("/api/v1/workflows/hello")).json()
    assert document["revision"] == 1 and [i["name"] for i in document["inputs"]] == ["who", "count"]
    cron = next(t for t in document["triggers"] if t["type"] == "cron")
    assert len(cron["next_fire_times"]) == 3 and cron["timezone"] == "Europe/Paris"
    assert KEY not in json.dumps(document)
    assert (await api.client.get("/api/v1/workflows/nope")).status_code == 404
    listed = (await api.client.get("/api/v1/workflows")).json()["workflows"]
    assert [w["id"] for w in listed] == ["hello"]


async def test_metrics_and_the_openapi_document(api: Api) -> None:
    from openapi_spec_validator import validate

    await api.finished(await api.start())
    text = (await api.client.get("/metrics")).text
    assert 'kestra_trio_executions{state="SUCCESS"} 1' in text
    assert "kestra_trio_queue_depth 0" in text
    assert "kestra_trio_log_flush_seconds_count" in text
    written = int(next(line.split()[1] for line in text.splitlines() if line.startswith("kestra_trio_log_lines_written_total")))
    assert written >= 4
    document = (await api.client.get("/api/v1/openapi.json")).json()
    validate(document)
    assert {"/api/v1/executions", "/api/v1/executions/{execution_id}/logs/follow", "/api/v1/webhooks/{workflow_id}/{key}"} <= set(document["paths"])


async def test_cancel_is_idempotent_and_a_finished_execution_is_left_alone(api: Api) -> None:
    execution_id = await api.start(inputs={"count": 1})
    await api.finished(execution_id)
    done = await api.client.post(f"/api/v1/executions/{execution_id}/cancel", json={"reason": "late"})
    assert done.status_code == 200 and done.json()["finished"] is True
    assert (await api.client.post("/api/v1/executions/nope-nope/cancel")).status_code == 404
    long = await api.client.post(f"/api/v1/executions/{execution_id}/cancel", json={"reason": "x" * 1001})
    assert long.status_code == 422 and "too long" in long.json()["message"]


async def test_a_webhook_body_its_inputs_cannot_use_is_422_with_the_template_problem(api: Api) -> None:
    response = await api.client.post(f"/api/v1/webhooks/hello/{KEY}", json={"nobody": 1})
    assert response.status_code == 422
    assert "who" in response.json()["message"]


async def test_another_sites_page_cannot_start_or_cancel_and_a_rebound_host_name_cannot_read(api: Api) -> None:
    cross = await api.client.post("/api/v1/executions", json={"workflow": "hello"}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and cross.json()["error"] == "cross_origin"
    same = await api.client.post("/api/v1/executions", json={"workflow": "hello"}, headers={"Origin": "http://127.0.0.1:8080"})
    assert same.status_code == 201
    rebound = await api.client.get("/api/v1/executions", headers={"Host": "evil.example:8080"})
    assert rebound.status_code == 403 and rebound.json()["error"] == "foreign_host"
    assert (await api.client.get("/api/v1/executions", headers={"Host": "localhost:8080"})).status_code == 200
    _, token = await TokenStore(api.ctx.service.db).create("proxy")
    behind_proxy = await api.client.get("/api/v1/executions",
                                        headers={"Host": "kestra.example", "Authorization": f"Bearer {token}"})
    assert behind_proxy.status_code == 200  # with a token, any host name


async def test_revisions_enable_disable_and_restart(api: Api, tmp_path: Path) -> None:
    changed = tmp_path / "hello.yaml"
    changed.write_text(textwrap.dedent(HELLO).replace("default: world", "default: everyone"))
    await api.ctx.service.workflows.apply([load_file(changed, REGISTRY).source])
    revisions = (await api.client.get("/api/v1/workflows/hello/revisions")).json()["revisions"]
    assert [r["revision"] for r in revisions] == [1, 2] and all(len(r["sha256"]) == 64 for r in revisions)
    first = (await api.client.get("/api/v1/workflows/hello", params={"revision": 1})).json()
    assert first["shown_revision"] == 1 and first["revision"] == 2 and "default: world" in first["source"]
    assert KEY not in first["source"] and 'key: "***SECRET***"' in first["source"]  # a webhook key is a credential
    assert first["inputs"][0]["default"] == "world"
    missing = await api.client.get("/api/v1/workflows/hello", params={"revision": 9})
    assert missing.status_code == 404 and "no revision 9" in missing.json()["message"]
    assert (await api.client.get("/api/v1/workflows/nope/revisions")).status_code == 404

    disabled = (await api.client.post("/api/v1/workflows/hello/disable")).json()
    assert disabled == {"id": "hello", "enabled": False, "changed": True}
    assert (await api.client.post("/api/v1/executions", json={"workflow": "hello"})).status_code == 409
    assert (await api.client.post("/api/v1/workflows/hello/enable")).json()["changed"] is True
    assert (await api.client.post("/api/v1/workflows/nope/enable")).status_code == 404

    execution_id = await api.start(inputs={"count": 1})
    await api.finished(execution_id)
    nothing = await api.client.post(f"/api/v1/executions/{execution_id}/restart", json={})
    assert nothing.status_code == 409, nothing.text  # a SUCCESS has nothing left to run
    again = await api.client.post(f"/api/v1/executions/{execution_id}/restart", json={"from_task": "say", "reason": "rerun"})
    assert again.status_code == 202, again.text
    document = await api.finished(execution_id)
    assert document["execution"]["state"] == "SUCCESS" and document["execution"]["restart_count"] == 1
    assert document["tasks"][0]["attempt_count"] == 2
    unknown = await api.client.post(f"/api/v1/executions/{execution_id}/restart", json={"bogus": 1})
    assert unknown.status_code == 422
    typo = await api.client.post(f"/api/v1/executions/{execution_id}/restart", json={"from_task": "sya"})
    assert typo.status_code == 422
    assert typo.json()["message"] == "from_task: no task 'sya' in the workflow's tasks (did you mean 'say'?); its tasks: say"
    nothing_left = (await api.client.post(f"/api/v1/executions/{execution_id}/restart", json={})).json()["message"]
    assert "--from" not in nothing_left and "from_task" in nothing_left


HOOK2 = r"""
id: hook2
description: "call it at /api/v1/webhooks/hook2/<key>"
triggers:
  - {id: a, type: webhook, key: "escaped-key-\x41BCDEFGHIJKLMNOP"}
  - {id: b, type: webhook, key: 'quoted-key-it''s-1234567890'}
  - id: c
    type: webhook
    key: >-
      folded-key-0123456789
tasks:
  - {id: say, type: core/shell.run, inputs: {command: "echo hi"}}
"""


async def test_a_key_in_any_yaml_spelling_is_masked_in_the_source_and_its_hash(api: Api, tmp_path: Path) -> None:
    from kestra_trio.storage.workflows import source_hash

    hook2 = tmp_path / "hook2.yaml"
    hook2.write_text(HOOK2)
    await api.ctx.service.workflows.apply([load_file(hook2, REGISTRY).source])
    for key in ("escaped-key-ABCDEFGHIJKLMNOP", "quoted-key-it's-1234567890", "folded-key-0123456789"):
        assert (await api.client.post(f"/api/v1/webhooks/hook2/{key}", json={})).status_code == 201, key
    detail = (await api.client.get("/api/v1/workflows/hook2")).json()
    for written in ("escaped-key", "quoted-key", "folded-key", "\\x41"):
        assert written not in json.dumps(detail), written
    assert detail["source"].count('key: "***SECRET***"') == 3 and 'description: "call it at' in detail["source"]
    [revision] = (await api.client.get("/api/v1/workflows/hook2/revisions")).json()["revisions"]
    # the hash of what is shown: the stored source's would let a reader test key guesses offline
    assert revision["sha256"] == source_hash(detail["source"]) != source_hash(HOOK2)
    hello = (await api.client.get("/api/v1/workflows/hello/revisions")).json()["revisions"][0]
    assert hello["sha256"] == source_hash((await api.client.get("/api/v1/workflows/hello")).json()["source"])
