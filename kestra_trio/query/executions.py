"""Execution lists: filters, keyset pages (newest first), and the task counts they show."""

from __future__ import annotations

from dataclasses import dataclass, field

from kestra_trio.errors import UsageError
from kestra_trio.query.cursors import decode_cursor, encode_cursor
from kestra_trio.state.states import State
from kestra_trio.storage.db import Database
from kestra_trio.storage.executions import ExecutionStore
from kestra_trio.storage.rows import ExecutionRow

#: the states a list can be filtered on, in the order messages name them
STATES = tuple(
    state.value
    for state in (State.QUEUED, State.PENDING, State.WAITING, State.RUNNING, State.SUCCESS, State.FAILED, State.CANCELLED)
)
MAX_LIMIT = 1_000_000


class InvalidState(UsageError):
    def __init__(self, given: str) -> None:
        self.given = given
        super().__init__(f"Invalid state. Must be one of: {', '.join(STATES)}")


@dataclass(frozen=True)
class ExecutionFilter:
    workflow_id: str | None = None
    state: str | None = None  # one of STATES; see `parse_state`
    #: only executions carrying every one of these labels (`--label k=v`, see `parse_labels`)
    labels: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def parse_labels(texts: list[str] | None) -> tuple[tuple[str, str], ...]:
        """`k=v` texts as (key, value) pairs; UsageError for a malformed one."""
        return tuple(parse_labels(texts).items())

    @staticmethod
    def parse_state(text: str | None) -> str | None:
        """A state as a user types it (any case, spaces around); InvalidState otherwise."""
        if text is None:
            return None
        state = text.strip().upper()
        if state not in STATES:
            raise InvalidState(text)
        return state


def parse_labels(texts: list[str] | None) -> dict[str, str]:
    """`run --label k=v` / `list --label k=v`: the labels, checked as the YAML `labels:` map is.

    Raises:
        UsageError: no `=`, a key/value the YAML map would refuse, or a key given twice (which
            of two values was meant is a guess we do not make, as for `--input`).
    """
    from kestra_trio.model.flow_checks import label_problem

    labels: dict[str, str] = {}
    for text in texts or []:
        key, sep, value = text.partition("=")
        if not sep:
            raise UsageError(f"--label must be KEY=VALUE, got {text!r}")
        problem = label_problem(key.strip(), value)
        if problem is not None:
            raise UsageError(f"--label {text!r}: {problem}")
        if key.strip() in labels:
            raise UsageError(f"--label {key.strip()} is given twice ({labels[key.strip()]!r} and {value!r}); give it once")
        labels[key.strip()] = value
    return labels


@dataclass(frozen=True)
class ExecutionPage:
    rows: list[ExecutionRow]
    #: execution id -> {task state: count}
    task_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: pass back to get the next page; None on the last page
    next_cursor: str | None = None


async def list_executions(
    db: Database, where: ExecutionFilter = ExecutionFilter(), *, limit: int = 20, cursor: str | None = None
) -> ExecutionPage:
    """One page of executions, newest first, with their task counts.

    Raises:
        InvalidCursor: `cursor` is not one a previous page returned.
    """
    store = ExecutionStore(db)
    before = decode_cursor(cursor, int, str) if cursor else None
    rows = await store.list(
        workflow_id=where.workflow_id, state=where.state, limit=limit + 1, before=before,  # type: ignore[arg-type]
        labels=where.labels,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    counts = await store.task_counts([row.id for row in rows])
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return ExecutionPage(rows, counts, next_cursor)


def not_found_message(exc: Exception, given: str, shown=str) -> str:
    """`Execution not found: <id>`, or the ids an ambiguous prefix matches: the CLI prints it,
    the API answers it (404), and the remote CLI prints the API's answer — one wording.
    `shown` makes untrusted text safe for where it goes (the CLI: one terminal line)."""
    from kestra_trio.storage.executions import MIN_PREFIX, AmbiguousExecutionId

    if isinstance(exc, AmbiguousExecutionId):
        ids = ", ".join(shown(m) for m in exc.matches) + (", …" if exc.more else "")
        return f"Execution id prefix {shown(given)} matches several executions: {ids}; give more characters"
    hint = f" (an id prefix needs at least {MIN_PREFIX} characters)" if 0 < len(given) < MIN_PREFIX else ""
    return f"Execution not found: {shown(given)}{hint}"
