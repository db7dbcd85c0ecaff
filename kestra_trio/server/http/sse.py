"""`GET /executions/{id}/logs/follow`: the query layer's `LogFollow` as Server-Sent Events.

Each entry is one event, `id:` its entry id (commit order), so a client that reconnects with
`Last-Event-ID` continues right after the last entry it got — no gap, no repeat. The stream
ends with `event: end` (`{"state": ...}`) only once `LogFollow` has read past the execution's
terminal state, i.e. after its last line was committed. A comment line every
`KEEPALIVE_SECONDS` keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing

import trio
from starlette.responses import StreamingResponse

from kestra_trio.query.documents import LogJsonFormatter
from kestra_trio.query.logs import LogFollow
from kestra_trio.server.http.context import ApiContext
from kestra_trio.storage.logs import LogFilter

KEEPALIVE_SECONDS = 15.0
#: a browser's EventSource waits this long before it reconnects
RETRY_MS = 2000


async def follow_events(ctx: ApiContext, where: LogFilter, after_id: int | None) -> AsyncIterator[str]:
    encode = LogJsonFormatter(where.execution_id)
    mask = ctx.masker.mask
    follower = LogFollow(ctx.db, where, after_id=after_id)
    yield f"retry: {RETRY_MS}\n\n"
    quiet_since = trio.current_time()
    async with aclosing(follower.batches(idle=True)) as batches:
        async for page in batches:
            if page:
                yield "".join(
                    f"id: {entry_id}\ndata: {mask(encode(task, ts, level, source, message, meta))}\n\n"
                    for (entry_id, task, ts, level, source, message, meta) in page
                )
                quiet_since = trio.current_time()
            elif trio.current_time() - quiet_since >= KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = trio.current_time()
    end: dict[str, object] = {"state": follower.end_state}
    if follower.lost_engine_pid is not None:
        end["engine_lost"] = follower.lost_engine_pid
    yield f"event: end\ndata: {json.dumps(end)}\n\n"


def follow_response(ctx: ApiContext, where: LogFilter, after_id: int | None) -> StreamingResponse:
    return StreamingResponse(
        follow_events(ctx, where, after_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
