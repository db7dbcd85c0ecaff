"""JSON answers: every document goes through the server's secret masker on its way out."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

JSON = "application/json"


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8", "replace")


def json_response(request: Request, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """`value` as JSON, secrets masked (values equal to a secret, in any common encoding)."""
    masker = getattr(request.app.state, "masker", None)
    if masker is not None:
        value = masker.mask_value(value)
    return Response(encode(value), status_code=status, headers=headers, media_type=JSON)
