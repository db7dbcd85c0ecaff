"""`kestra-trio execution …`: read what happened (logs, inspect, list) and ask to stop (cancel).

The readers open the database read-mostly with `must_exist=True` (a missing file reads as
empty) and never talk to the engine. Heavy imports (trio, rich, storage) happen inside the
commands so `kestra-trio execution logs --help` stays fast.

Messages the issue fixes word for word are written here, not raised: `main()` would prefix
them with `kestra-trio: error:`. Every other failure (bad database, …) is raised as a
`KestraTrioError` and printed by `main()`.

Whatever a message echoes from the command line or the database (an id, a task id, a host
name) goes through `_arg()` (`formatting.literal_line`): control characters and newlines are
shown as escapes, so every message stays one line and nothing is executed by the terminal.
"""

from __future__ import annotations

import sys
from typing import Annotated

from cyclopts import App, Parameter

from kestra_trio.cli.params import DbPath, Number, ServerUrl, WholeNumber

execution_app = App(
    name="execution",
    backend="trio",
    default_parameter=Parameter(negative=()),
)

POLL_SECONDS = 0.1
#: --reason longer than this is refused (it is stored with the request and in the audit log)
MAX_REASON_CHARS = 1000
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")


def _say(message: str, *, stream=None) -> None:
    stream = sys.stderr if stream is None else stream
    try:
        stream.write(message + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def _fail(message: str) -> int:
    _say(message)
    return EXIT_FAILURE


def _arg(text: str) -> str:
    """Untrusted text (an argument, an id read back from the database) made safe for a one-line message."""
    from kestra_trio.cli.formatting import literal_line

    return literal_line(text)


def _stored(text: str | None) -> str | None:
    """`text` as the database can hold it: an undecodable argument's lone surrogates replaced (U+FFFD),
    as the writers store them, so it can be bound to a query and compared with stored text."""
    if text is None:
        return None
    from kestra_trio.storage.text import encodable_text

    return encodable_text(text)


def _not_found(exc: Exception, execution_id: str) -> int:
    """`Execution not found: <id>`, or the ids an ambiguous prefix matches (exit 1)."""
    from kestra_trio.query.executions import not_found_message

    return _fail(not_found_message(exc, execution_id, _arg))


def _server(option: str | None) -> str | None:
    from kestra_trio.cli.remote import server_url

    return server_url(option)


def _task_not_found(task_id: str, execution_id: str) -> int:
    return _fail(f"Task not found: {_arg(task_id)} in execution {_arg(execution_id)}")


def _silence_stdout() -> None:
    """After EPIPE (`… | head`): point fd 1 at /dev/null so the exit-time flush stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _prepare_stdout() -> None:
    # log text is arbitrary Unicode; a non-UTF-8 locale must not turn it into a traceback
    try:
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        pass


# --------------------------------------------------------------------------- logs


@execution_app.command
async def logs(
    execution_id: str,
    /,
    *,
    task: str | None = None,
    level: str | None = None,
    since: str | None = None,
    source: str | None = None,
    as_json: Annotated[bool, Parameter(name="--json")] = False,
    jsonl: bool = False,
    follow: bool = False,
    raw: bool = False,
    db: DbPath = None,
    server: ServerUrl = None,
) -> int:
    """Print the logs of an execution, oldest first.

    Parameters
    ----------
    execution_id
        Execution id (or a unique prefix of at least 4 characters).
    task
        Only this task's entries.
    level
        Only these levels: DEBUG, INFO, WARN, ERROR; several with commas (WARN,ERROR).
    since
        Only entries newer than this: 30s, 5m, 2h, 1d.
    source
        Only entries whose source starts with this prefix (e.g. plugin, scheduler).
    as_json
        A JSON array of entries (execution_id, task_id, timestamp, level, source, message, metadata).
    jsonl
        One JSON object per line; works with --follow.
    follow
        Keep printing new entries until the execution finishes (Ctrl+C stops).
    raw
        On a terminal too, show control characters as escapes (a program's colour codes as \x1b[32m,
        carriage returns as \r), as in a pipe.
    db
        Database file.
    """
    from kestra_trio.cli import formatting

    if as_json and follow:
        return _fail("--json cannot be used with --follow")
    if as_json and jsonl:
        return _fail("--json cannot be used with --jsonl")
    try:
        levels = formatting.parse_levels(level) if level is not None else ()
        since_seconds = formatting.parse_since(since) if since is not None else None
    except ValueError as exc:
        return _fail(str(exc))

    _prepare_stdout()
    try:
        if (url := _server(server)) is not None:
            from kestra_trio.cli import execution_remote

            return await execution_remote.logs(url, execution_id, task, level, since, source, as_json, jsonl, follow, raw)
        return await _logs(execution_id, task, levels, since_seconds, source, as_json, jsonl, follow, raw, db)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        _flush_quietly()
        return EXIT_INTERRUPTED


def _message_view(out, raw: bool):
    """How a message holding control characters is shown: a program's colours on a terminal, escapes elsewhere."""
    from functools import partial

    from kestra_trio.cli import formatting, terminal_text
    from kestra_trio.cli.console import color_enabled, is_terminal

    if raw:
        return formatting.literal
    if color_enabled(out):  # a terminal, or FORCE_COLOR
        return terminal_text.render
    if is_terminal(out):  # NO_COLOR: the text without its colour codes
        return partial(terminal_text.render, color=False)
    return formatting.literal


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except (OSError, ValueError):
        pass


async def _logs(
    execution_id: str,
    task: str | None,
    levels: tuple[str, ...],
    since_seconds: float | None,
    source: str | None,
    as_json: bool,
    jsonl: bool,
    follow: bool,
    raw: bool,
    db_option: str | None,
) -> int:
    from kestra_trio.config import resolve_db_path
    from kestra_trio.errors import ExecutionNotFound
    from kestra_trio.observability.records import now_ms
    from kestra_trio.query.logs import LogFollow, log_pages
    from kestra_trio.storage import reads
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.executions import ExecutionStore
    from kestra_trio.storage.logs import LogFilter

    async with open_database(resolve_db_path(db_option), must_exist=True) as database:
        try:
            resolved = await ExecutionStore(database).resolve_id(execution_id)
        except ExecutionNotFound as exc:
            return _not_found(exc, execution_id)
        # a --task that is not a task of the execution is a typo: say so (as `inspect --task`),
        # rather than "No logs found" or, with --follow, waiting for lines that cannot come
        if task is not None and not await database.run(reads.task_exists, resolved, _stored(task)):
            return _task_not_found(task, resolved)
        since_ms = now_ms() - int(since_seconds * 1000) if since_seconds is not None else None
        log_filter = LogFilter(resolved, _stored(task), levels, since_ms, _stored(source) or None)

        if follow:
            follower = LogFollow(database, log_filter)
            printed = await print_logs(follower.batches(idle=True), resolved, as_json, jsonl, raw)
            lost_pid = follower.lost_engine_pid
        else:
            printed = await print_logs(log_pages(database, log_filter), resolved, as_json, jsonl, raw)
            lost_pid = None
        lost_entries = await database.run(reads.log_entries_lost, resolved)
        return _logs_end(printed, resolved, task, lost_pid, lost_entries)


async def print_logs(pages, resolved: str, as_json: bool, jsonl: bool, raw: bool) -> int:
    """Print pages of log tuples (`query.logs.LOG_PAGE_COLUMNS`) as `execution logs` does; an
    empty page (a follow's quiet poll) checks that the reader of stdout is still there.
    Returns how many entries were printed. Local and remote (`--server`) logs both print here."""
    from contextlib import aclosing

    from kestra_trio.cli import formatting
    from kestra_trio.cli.console import color_enabled, level_tags

    out = sys.stdout
    write = out.write
    if as_json or jsonl:
        encode = formatting.LogJsonFormatter(resolved)

        def render(page: list) -> str:
            return "".join([encode(t, ts, lv, src, msg, meta) + "\n" for (_i, t, ts, lv, src, msg, meta) in page])

        def render_json(page: list, first: bool) -> str:
            body = ",\n".join([encode(t, ts, lv, src, msg, meta) for (_i, t, ts, lv, src, msg, meta) in page])
            return ("[\n" if first else ",\n") + body
    else:
        fmt = formatting.LogLineFormatter(level_tags(color_enabled(out)), _message_view(out, raw))

        def render(page: list) -> str:
            return "".join([fmt(ts, lv, src, msg) for (_i, _t, ts, lv, src, msg, _m) in page])

    printed = 0
    async with aclosing(pages) as batches:
        async for page in batches:
            if page:
                write(render_json(page, printed == 0) if as_json else render(page))
                printed += len(page)
                out.flush()
            elif _reader_gone(out):  # `--follow | head -n 5`: nothing to write that would tell
                raise BrokenPipeError(32, "the reader of stdout went away")
    if as_json:
        write("\n]\n" if printed else "[]\n")
    out.flush()
    return printed


def _logs_end(printed: int, resolved: str, task: str | None, lost_pid: int | None, lost_entries: int = 0) -> int:
    if lost_entries:  # the ERROR lines say which task and when; this says the log is incomplete
        _say(
            f"kestra-trio: note: {lost_entries:,} log entries of execution {_arg(resolved)} could not be written "
            "to the database and are lost (see the ERROR lines with reason DATABASE_ERROR)"
        )
    if lost_pid is not None:
        _say(
            f"kestra-trio: the engine running execution {_arg(resolved)} (pid {lost_pid}) is gone; "
            "the execution will be marked FAILED (ENGINE_LOST) when kestra-trio next runs"
        )
        return EXIT_FAILURE
    if printed == 0:
        if task is not None:
            _say(f"No logs found for task {_arg(task)} in execution {_arg(resolved)}")
        else:
            _say(f"No logs found for execution {_arg(resolved)}")
    return EXIT_OK


def _reader_gone(out) -> bool:
    """True when stdout is a pipe whose reader has closed it (poll reports POLLERR/POLLHUP),
    which otherwise shows only at the next write, and a quiet execution may not write for hours."""
    import select

    try:
        poller = select.poll()
        poller.register(out.fileno(), 0)  # errors and hang-ups are always reported
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _engine_gone(pid: int | None, host: str | None) -> bool:
    from kestra_trio.query.liveness import engine_gone

    return engine_gone(pid, host)


# --------------------------------------------------------------------------- inspect


@execution_app.command
async def inspect(
    execution_id: str,
    /,
    *,
    task: str | None = None,
    show_inputs: bool = False,
    timeline: bool = False,
    audit: bool = False,
    as_json: Annotated[bool, Parameter(name="--json")] = False,
    no_truncate: bool = False,
    db: DbPath = None,
    server: ServerUrl = None,
) -> int:
    """Show the state of an execution and of each of its tasks.

    Parameters
    ----------
    execution_id
        Execution id (or a unique prefix of at least 4 characters).
    task
        Show this one task in full: attempts, error, last 20 log lines.
    show_inputs
        Show each task's resolved inputs (secrets masked) and outputs.
    timeline
        Draw a Gantt chart of the tasks relative to the execution start.
    audit
        List the audit events in order.
    as_json
        One JSON object: execution, tasks (inputs, outputs, errors, attempts), audit_events.
    no_truncate
        Show values longer than 200 characters in full.
    db
        Database file.
    """
    from kestra_trio.config import resolve_db_path
    from kestra_trio.errors import ExecutionNotFound
    from kestra_trio.inspection.inspector import ExecutionInspector, TaskNotFound
    from kestra_trio.storage.db import open_database

    if (url := _server(server)) is not None:
        from kestra_trio.cli import execution_remote

        _prepare_stdout()
        try:
            return await execution_remote.inspect(url, execution_id, task, show_inputs, timeline, audit, as_json,
                                                  not no_truncate)
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_OK
    async with open_database(resolve_db_path(db), must_exist=True) as database:
        try:
            snapshot = await ExecutionInspector(database).snapshot(
                execution_id, task_id=_stored(task), log_tail=20, with_values=show_inputs or as_json
            )
        except ExecutionNotFound as exc:
            return _not_found(exc, execution_id)
        except TaskNotFound as exc:
            return _task_not_found(task or exc.task_id, exc.execution_id)

    _prepare_stdout()
    try:
        _print_inspect(snapshot, _stored(task), show_inputs, timeline, audit, as_json, not no_truncate)
    except BrokenPipeError:
        _silence_stdout()
    return EXIT_OK


def _print_inspect(snapshot, task, show_inputs, timeline, audit, as_json, truncate) -> None:
    from kestra_trio.cli import formatting
    from kestra_trio.cli.console import stdout_console
    from kestra_trio.inspection.timeline import build_timeline

    from kestra_trio.cli.sandbox_view import sandbox_view
    from kestra_trio.query.documents import inspect_document

    if as_json:
        sys.stdout.write(formatting.dumps_pretty(inspect_document(snapshot, task_id=task)) + "\n")
        sys.stdout.flush()
        return
    console = stdout_console()
    chart = None
    width = 40
    if timeline:
        rows = snapshot.tasks if task is None else [t for t in snapshot.tasks if t.task_id == task]
        chart = build_timeline(snapshot.execution, rows, snapshot.attempts_by_task, snapshot.taken_at_ms)
        longest_id = max((len(t.task_id) for t in rows), default=4)
        width = formatting.timeline_bar_width(console.width, longest_id)
    # soft_wrap: long values and log lines are printed whole, never folded; tables still fit the width
    console.print(
        formatting.inspect_view(
            snapshot, show_inputs=show_inputs, truncate=truncate, timeline=chart, audit=audit, width=width,
            table_width=console.width,
        ),
        soft_wrap=True,
    )
    if snapshot.sandbox is not None:
        for line in sandbox_view(snapshot.sandbox, task):
            console.print(line, soft_wrap=True)
    execution = snapshot.execution
    if snapshot.running and _engine_gone(execution.engine_pid, execution.engine_host):
        # what `logs --follow` says too: "RUNNING" alone would look like a live execution
        _say(
            f"note: the engine running this execution (pid {execution.engine_pid}) is gone; the execution will be "
            "marked FAILED (ENGINE_LOST) when kestra-trio next runs"
        )


# --------------------------------------------------------------------------- list


@execution_app.command(name="list")
async def list_(
    *,
    workflow: str | None = None,
    state: str | None = None,
    limit: WholeNumber = 20,
    as_json: Annotated[bool, Parameter(name="--json")] = False,
    db: DbPath = None,
    server: ServerUrl = None,
) -> int:
    """List executions, newest first, with state, start, duration and task counts.

    Parameters
    ----------
    workflow
        Only executions of this workflow id.
    state
        Only executions in this state: QUEUED, PENDING, WAITING, RUNNING, SUCCESS, FAILED, CANCELLED.
    limit
        At most this many executions.
    as_json
        A JSON array of executions.
    db
        Database file.
    """
    from kestra_trio.cli import formatting
    from kestra_trio.cli.console import stdout_console
    from kestra_trio.config import resolve_db_path
    from kestra_trio.observability.records import now_ms
    from kestra_trio.query.executions import MAX_LIMIT, ExecutionFilter, InvalidState, list_executions
    from kestra_trio.storage.db import open_database

    try:
        where = ExecutionFilter(_stored(workflow), ExecutionFilter.parse_state(state))
    except InvalidState as exc:
        return _fail(str(exc))
    if not 1 <= limit <= MAX_LIMIT:  # a bad argument, as `--limit abc`: exit 2
        _say(f"--limit must be between 1 and {MAX_LIMIT}")
        return EXIT_USAGE
    if (url := _server(server)) is not None:
        from kestra_trio.cli import execution_remote

        _prepare_stdout()
        try:
            return await execution_remote.list_(url, where.workflow_id, where.state, limit, as_json)
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_OK
    async with open_database(resolve_db_path(db), must_exist=True) as database:
        page = await list_executions(database, where, limit=limit)
    rows, counts = page.rows, page.task_counts
    now = now_ms()
    _prepare_stdout()
    try:
        if as_json:  # `[]` when nothing matches: stdout stays valid JSON; the note goes to stderr
            sys.stdout.write(formatting.dumps_pretty(formatting.execution_list_json(rows, counts, now)) + "\n")
            sys.stdout.flush()
        elif rows:
            stdout_console().print(formatting.execution_list_table(rows, counts, now))
        if not rows:
            _say("No executions found")
    except BrokenPipeError:
        _silence_stdout()
    return EXIT_OK


# --------------------------------------------------------------------------- cancel


@execution_app.command
async def cancel(
    execution_id: str,
    /,
    *,
    reason: str | None = None,
    wait: Number = 5.0,
    db: DbPath = None,
    server: ServerUrl = None,
) -> int:
    """Ask the engine running an execution to cancel it, and wait until it has.

    Idempotent: cancelling twice records one request; a finished execution is left unchanged.

    Parameters
    ----------
    execution_id
        Execution id (or a unique prefix of at least 4 characters).
    reason
        Why; recorded in the audit log (at most 1000 characters).
    wait
        Seconds to wait for the CANCELLED state (0: do not wait).
    db
        Database file.
    """
    import trio

    from kestra_trio.config import resolve_db_path
    from kestra_trio.errors import ExecutionNotFound
    from kestra_trio.service.cancel import request_cancel
    from kestra_trio.storage import reads
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.executions import ExecutionStore

    if not 0 <= wait <= 3600:  # a bad argument, as cyclopts reports `--wait abc`: exit 2
        _say("--wait must be between 0 and 3600 seconds")
        return EXIT_USAGE
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        return _fail(f"--reason must be at most {MAX_REASON_CHARS} characters (got {len(reason)})")
    if (url := _server(server)) is not None:
        from kestra_trio.cli import execution_remote

        try:
            return await execution_remote.cancel(url, execution_id, _stored(reason), wait)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    async with open_database(resolve_db_path(db), must_exist=True) as database:
        store = ExecutionStore(database)
        refused: Exception | None = None
        try:
            resolved = await store.resolve_id(execution_id)
            try:
                answer = await request_cancel(database, resolved, by="user", reason=_stored(reason))
            except Exception as exc:
                from kestra_trio.query.liveness import engine_gone
                from kestra_trio.service.cancel import CancelAnswer
                from kestra_trio.storage.write_retry import is_write_refused

                if not is_write_refused(exc):
                    raise
                found = await store.get(resolved)  # a read: works while writes are refused
                if found is None:
                    raise ExecutionNotFound(resolved) from None
                refused, answer = exc, CancelAnswer(found, True, engine_gone(found.engine_pid, found.engine_host))
        except ExecutionNotFound as exc:
            return _not_found(exc, execution_id)
        execution, shown = answer.execution, _arg(resolved)
        if execution.is_terminal:
            _say(f"Execution {shown} already finished: {execution.state}", stream=sys.stdout)
            return EXIT_OK
        if refused is not None:
            _stop_engine_instead(execution, refused)
        _say(
            f"Cancel requested for execution {shown}"
            + ("" if answer.created else " (it was already requested)")
            + (f" (the database refuses writes: its engine, pid {execution.engine_pid}, was sent SIGTERM)" if refused else ""),
            stream=sys.stdout,
        )
        if answer.engine_gone:  # nobody will act on it: say so now
            wait = 0

        async def recorded_state() -> str:
            return await database.run(reads.execution_state, resolved) or "CANCELLED"

        state = execution.state
        try:
            with trio.move_on_after(wait):
                while (state := await recorded_state()) not in TERMINAL:
                    await trio.sleep(POLL_SECONDS)
            if state not in TERMINAL:  # the wait ran out (or was skipped): the answer is the state recorded now
                state = await recorded_state()
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        if not say_cancel_outcome(shown, state):
            note = _engine_note(execution.engine_pid, execution.engine_host)
            if note:
                _say(note)
    return EXIT_OK


def _stop_engine_instead(execution, refused: Exception) -> None:
    """The database cannot record the request (disk full, read-only file): do what Ctrl+C in
    the engine's terminal does. Only for an execution pinned to its process (`kestra-trio
    run`), whose engine runs on this host and still is kestra-trio.

    Raises:
        StorageError: the engine cannot be reached that way either (exit 3).
    """
    import os
    import signal
    import socket

    from kestra_trio.errors import StorageError

    pid, host = execution.engine_pid, execution.engine_host
    reason = f"cannot record the cancel request: the database refuses writes ({refused})"
    if not execution.queue.startswith("local:"):  # a server's: SIGTERM would stop all it runs
        raise StorageError(f"{reason}; it runs in a server: stop that, or free the database and try again")
    if pid is None or pid <= 0 or host != socket.gethostname():
        raise StorageError(f"{reason}, and its engine does not run on this host; free the database and try again")
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            ours = b"kestra" in cmdline.read()  # not a reused pid of another program
        if not ours:
            raise ProcessLookupError(pid)
        os.kill(pid, signal.SIGTERM)
    except OSError:
        raise StorageError(f"{reason}, and its engine (pid {pid}) is not running") from None


def say_cancel_outcome(shown: str, state: str) -> bool:
    """What `cancel` ends with, locally or over HTTP; False while the execution still runs."""
    if state == "CANCELLED":
        _say(f"Execution {shown} cancelled", stream=sys.stdout)
    elif state in TERMINAL:
        _say(f"Execution {shown} finished before the cancel took effect: {state}", stream=sys.stdout)
    else:
        _say(f"Execution {shown}: cancel requested; state is still {state}", stream=sys.stdout)
        return False
    return True


# --------------------------------------------------------------------------- start


@execution_app.command
async def start(
    workflow: str,
    /,
    *,
    inputs: Annotated[list[str] | None, Parameter(name=["--input", "-i"])] = None,
    wait: bool = False,
    raw: bool = False,
    server: ServerUrl = None,
) -> int:
    """Start an execution of a registry workflow on a server (it runs the current revision).

    Exit codes: 0 queued (with --wait: SUCCESS), 1 no such workflow (with --wait: FAILED or
    CANCELLED), 2 inputs refused (the messages of `run --input`), 3 the server cannot be reached.

    Parameters
    ----------
    workflow
        The workflow id (`kestra-trio workflow list`).
    inputs
        A run-time input as KEY=VALUE; repeat for several.
    wait
        Print the execution's log as it runs and exit with its final state.
    raw
        With --wait on a terminal, show control characters as escapes.
    server
        The server to start it on.
    """
    from kestra_trio.errors import UsageError
    from kestra_trio.model.inputs import parse_input_args

    url = _server(server)
    if url is None:
        raise UsageError(
            "execution start needs a server: --server URL or KESTRA_TRIO_SERVER "
            "(to run a workflow file here and now: kestra-trio run FILE)"
        )
    values = parse_input_args(inputs or [])
    from kestra_trio.cli import execution_remote

    _prepare_stdout()
    try:
        return await execution_remote.start(url, workflow, dict(values), wait, raw)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _engine_note(pid: int | None, host: str | None) -> str | None:
    """A hint when the engine that owns the execution does not seem to be running any more."""
    import os
    import socket

    if pid is None:
        return "note: no engine process is recorded for this execution; the request waits for an engine to pick it up"
    if host and host != socket.gethostname():
        return f"note: the engine runs on {_arg(host)} (pid {pid}); it will handle the request when it polls"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"note: the engine process recorded for this execution (pid {pid}) is not running"
    except PermissionError:
        return None
    return None
