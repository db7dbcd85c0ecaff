"""core/http.request with urllib.

``timeout`` is a deadline for the whole request (DNS, connect, TLS, headers and body): the
request runs in a daemon thread that the action stops waiting for at the deadline (the
process exits right after, which ends the thread). urllib's own timeout applies to each
socket operation only, so a server sending a byte every few seconds would never time out.

The body is read in chunks and the task fails as soon as it exceeds ``max_body_bytes``
(10 MiB by default; a Content-Length above it fails before any byte is read): the body is
returned in the result, which the engine caps at 16 MiB.
"""

import json
import threading
import time
import urllib.error
import urllib.request

from kestra_trio.sdk import MAX_RESULT_BYTES, Plugin

plugin = Plugin("http")

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    def __init__(self, limit: int, announced: "int | None" = None) -> None:
        super().__init__(limit, announced)
        self.limit = limit
        self.announced = announced


def _encode_body(body, headers):
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    headers.setdefault("Content-Type", "application/json")
    return json.dumps(body).encode()


def _decode_body(data: bytes, content_type: str):
    text = data.decode("utf-8", errors="replace")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _read_capped(resp, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to exceed ``limit`` bytes."""
    length = resp.headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise BodyTooLarge(limit, int(length))
    chunks, size = [], 0
    while True:
        chunk = resp.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)


def _exchange(req, timeout: float, limit: int):
    """``(status, headers, body bytes)``; runs in the worker thread."""
    try:
        # the per-operation socket timeout only bounds this thread's life; the deadline is join()'s
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.headers, _read_capped(resp, limit)
    except urllib.error.HTTPError as exc:  # an HTTP status >= 400 still has headers and a body
        with exc:
            return exc.code, exc.headers, _read_capped(exc, limit)


@plugin.action("request")
def request(ctx, inputs):
    method = inputs.get("method", "GET").upper()
    url = inputs["url"]
    timeout = float(inputs.get("timeout", DEFAULT_TIMEOUT))
    limit = int(inputs.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
    headers = dict(inputs.get("headers") or {})
    data = _encode_body(inputs.get("body"), headers)
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    ctx.log.info(f"{method} {url}")

    outcome = {}

    def work():
        try:
            outcome["value"] = _exchange(req, timeout, limit)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=work, name="http-request", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():  # the thread is a daemon: it ends with the process
        ctx.fail(
            f"{method} {url} timed out after {timeout:g} s "
            "(the timeout covers connecting, the response headers and the whole body)"
        )
    exc = outcome.get("error")
    if isinstance(exc, BodyTooLarge):
        size = f" (Content-Length: {exc.announced})" if exc.announced is not None else ""
        ctx.fail(
            f"{method} {url}: response body larger than {exc.limit} bytes{size}; raise max_body_bytes "
            f"(the task's result, body included, must stay under {MAX_RESULT_BYTES // 2**20} MiB), or download large files "
            "with core/shell.run (e.g. curl -o FILE)"
        )
    if isinstance(exc, (urllib.error.URLError, OSError)):
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            elapsed = time.monotonic() - started
            ctx.fail(f"{method} {url} timed out after {elapsed:.3g} s (timeout: {timeout:g} s): {reason}")
        ctx.fail(f"{method} {url} failed: {reason}")
    if exc is not None:
        raise exc
    status, resp_headers, raw = outcome["value"]
    outputs = {
        "status": status,
        "headers": {k.lower(): v for k, v in resp_headers.items()},
        "body": _decode_body(raw, resp_headers.get("Content-Type", "")),
    }
    if status >= 400 and not inputs.get("allow_failed", False):
        ctx.fail(f"{method} {url} returned HTTP {status}")
    return outputs


if __name__ == "__main__":
    plugin.main()
