"""core/http.request with urllib."""

import json
import urllib.error
import urllib.request

from kestra_trio.sdk import Plugin

plugin = Plugin("http")


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


@plugin.action("request")
def request(ctx, inputs):
    method = inputs.get("method", "GET").upper()
    headers = dict(inputs.get("headers") or {})
    data = _encode_body(inputs.get("body"), headers)
    req = urllib.request.Request(inputs["url"], data=data, headers=headers, method=method)
    ctx.log.info(f"{method} {inputs['url']}")
    try:
        with urllib.request.urlopen(req, timeout=float(inputs.get("timeout", 30))) as resp:  # noqa: S310
            status, resp_headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, resp_headers, raw = exc.code, exc.headers, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        ctx.fail(f"{method} {inputs['url']} failed: {reason}")
    outputs = {
        "status": status,
        "headers": {k.lower(): v for k, v in resp_headers.items()},
        "body": _decode_body(raw, resp_headers.get("Content-Type", "")),
    }
    if status >= 400 and not inputs.get("allow_failed", False):
        ctx.fail(f"{method} {inputs['url']} returned HTTP {status}")
    return outputs


if __name__ == "__main__":
    plugin.main()
