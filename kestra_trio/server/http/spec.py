"""The API, declared once: each `Operation` is a route, its checks and its OpenAPI entry.

`app.py` builds the router from these declarations, `call.py` checks each request against
them (unknown query parameters, types, the JSON body against its schema) before the handler
runs, and `openapi_document()` publishes them at /api/v1/openapi.json — so the document
cannot drift from what the server does (tests/server/test_openapi.py checks real answers
against it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kestra_trio import __version__
from kestra_trio.server.http.schemas import SCHEMAS

if TYPE_CHECKING:
    from starlette.responses import Response

    from kestra_trio.server.http.call import Call
    from kestra_trio.server.http.context import ApiContext

API_PREFIX = "/api/v1"
JSON = "application/json"


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["query", "path", "header"]
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Answer:
    description: str
    schema: str | None = None  # a name in SCHEMAS
    media_type: str = JSON


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # under API_PREFIX, with {name} path parameters
    operation_id: str
    summary: str
    handler: Callable[[ApiContext, Call], Awaitable[Response]]
    responses: Mapping[int, Answer]
    tag: str
    params: tuple[Param, ...] = ()
    body: str | None = None  # a name in SCHEMAS: the JSON body is checked against it first
    body_required: bool = True
    #: no API token needed (health; a webhook carries its own key)
    public: bool = False
    #: creates an execution: answered 503 while the server drains
    starts: bool = False
    description: str | None = None

    @property
    def full_path(self) -> str:
        return API_PREFIX + self.path


#: answers any operation may give, besides its own
COMMON_ERRORS = {
    400: "malformed request: bad JSON, an unknown or repeated query parameter, a bad cursor",
    413: "the body is larger than --max-body (1 MiB by default)",
    500: "internal error (the server log has the details; never a stack trace)",
}
AUTH_ERROR = "a valid API token is required: `Authorization: Bearer <token>` (when tokens exist)"


def openapi_document(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "responses": {},
        }
        if op.description:
            entry["description"] = op.description
        if op.params:
            entry["parameters"] = [
                {"name": p.name, "in": p.where, "description": p.description, "required": p.required or p.where == "path",
                 "schema": dict(p.schema)}
                for p in op.params
            ]
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body_required,
                "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{op.body}"}}},
            }
        answers = {status: answer for status, answer in op.responses.items()}
        for status, text in COMMON_ERRORS.items():
            answers.setdefault(status, Answer(text, "Error"))
        if not op.public:
            answers.setdefault(401, Answer(AUTH_ERROR, "Error"))
            entry["security"] = [{"bearer": []}]
        else:
            entry["security"] = []
        for status in sorted(answers):
            answer = answers[status]
            response: dict[str, Any] = {"description": answer.description}
            if answer.schema is not None:
                response["content"] = {answer.media_type: {"schema": {"$ref": f"#/components/schemas/{answer.schema}"}}}
            elif answer.media_type != JSON:
                response["content"] = {answer.media_type: {"schema": {"type": "string"}}}
            entry["responses"][str(status)] = response
        paths.setdefault(op.full_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kestra-trio API",
            "version": __version__,
            "description": "Start, follow and cancel workflow executions. See docs/server.md.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "`kestra-trio server token create NAME`"}},
        },
    }
