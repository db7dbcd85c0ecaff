#!/usr/bin/env python3
"""Regenerate the example-output blocks of the docs from real runs.

    .venv/bin/python scripts/gen_docs.py            # rewrite every generated block in place
    .venv/bin/python scripts/gen_docs.py --check    # exit 1 if a block is stale (for CI)
    .venv/bin/python scripts/gen_docs.py docs/cli.md --check   # only some files

Convention (in a markdown file):

    <!-- gen: kestra-trio execution logs {last:hello} --level WARN -->
    ```console
    ...replaced by the real output...
    ```

* ``<!-- gen: [OPTIONS] COMMAND -->`` directly above a fenced block: the block's content is
  replaced by ``$ COMMAND`` (placeholders resolved), the command's real stdout+stderr
  (interleaved as written) and ``[exit N]``. Several ``gen:`` lines in a row, then one fence,
  make one block with several commands. If no fence follows, a ```` ```console ```` block is
  inserted. The fence's info string (``console``, ``yaml`` ...) is kept.
* ``<!-- gen-setup: [OPTIONS] COMMAND -->``: run the command at this point, show nothing
  (e.g. run a workflow whose execution a later block inspects).
* ``<!-- gen-bg: name=NAME [delay=S] [OPTIONS] COMMAND -->``: start the command in the
  background (after ``delay`` seconds) and show nothing yet; a later
  ``<!-- gen: job=NAME -->`` shows its command and output once it has finished. This is how a
  doc shows two terminals at once (``logs --follow`` in one, ``execution cancel`` in another).

OPTIONS are leading ``key=value`` words (lower-case keys, so ``FOO=1 cmd`` stays an
environment assignment for the shell):

    exit=N      expected exit code (default 0); any other code is an error
    cwd=DIR     working directory: relative to the repository root (the default), or ``tmp``
                for the per-file scratch directory (which also holds the database)
    show=output show only the output: no ``$ command`` line and no ``[exit N]`` line
    columns=N   terminal width for this command (default 100)
    timeout=S   give up after S seconds (default 60)
    name=/delay=/job=   see gen-bg above

COMMAND runs with ``bash -c`` (pipes, redirections and ``VAR=value`` prefixes work) and with
``kestra-trio`` meaning this checkout's ``.venv/bin/kestra-trio`` (the venv's bin/ comes first
on PATH). Environment: ``NO_COLOR=1``, ``COLUMNS=100``, ``TZ=UTC``, no inherited
``KESTRA_TRIO_*`` variables, and ``KESTRA_TRIO_DB`` = ``kestra.db`` in a fresh temporary
directory per markdown file; the commands of one file run in file order against that one
database, so later blocks can inspect earlier runs. Placeholders in COMMAND:

    {last}          id of the most recently created execution in that database
    {last:WF}       id of the most recent execution of workflow WF (waits up to 15 s for one
                    to appear, for executions started by gen-bg)
    {last:WF:N}     its first N characters (an abbreviated id)

and ``$GEN_DOCS_REPO`` (environment) is the repository root, for commands run in ``cwd=tmp``.

The output is real and unedited except that trailing whitespace is stripped from each line
(rich pads table cells) and trailing blank lines are dropped.

``--check`` regenerates into memory and compares with the file after masking what
legitimately differs between runs (execution ids, timestamps, durations, pids, byte sizes,
timeline bars, column padding) and ignoring line order (parallel tasks finish in any order).
It lists each block whose command exits with another code than declared, or whose masked
output changed, and exits 1.

``gen_docs.py demo-db PATH`` (used by docs/storage.md) fills a database with 3,000 log lines,
2,500 of them 40 days old, and 12 audit events, 6 of them 40 days old.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
DEFAULT_FILES = [
    "README.md",
    "docs/cli.md",
    "docs/workflows.md",
    "docs/plugins.md",
    "docs/storage.md",
    "docs/engine.md",
    "docs/observability.md",
    "docs/security.md",
]

DIRECTIVE = re.compile(r"^<!--\s*(gen|gen-setup|gen-bg):\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})(.*)$")
OPTION = re.compile(r"^(exit|cwd|show|columns|timeout|name|delay|job)=(\S+)\s*")
PLACEHOLDER = re.compile(r"\{last(?::([A-Za-z0-9][A-Za-z0-9_-]*)(?::(\d+))?)?\}")


class GenError(Exception):
    pass


@dataclass
class Directive:
    kind: str  # gen | gen-setup | gen-bg
    command: str
    options: dict[str, str]
    line: int  # 1-based line number of the comment

    @property
    def expected_exit(self) -> int:
        return int(self.options.get("exit", "0"))


def parse_directive(kind: str, text: str, line: int) -> Directive:
    options: dict[str, str] = {}
    while match := OPTION.match(text):
        options[match.group(1)] = match.group(2)
        text = text[match.end():]
    return Directive(kind, text.strip(), options, line)


@dataclass
class Result:
    command: str  # with placeholders resolved
    output: str
    exit_code: int
    seconds: float


@dataclass
class Job:
    directive: Directive
    thread: threading.Thread
    result: Result | None = None
    error: str | None = None


@dataclass
class Problem:
    path: str
    line: int
    command: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: `{self.command}`: {self.message}"


@dataclass
class DocRun:
    """Runs the directives of one markdown file in one scratch directory and database."""

    path: Path
    tmp: Path
    problems: list[Problem] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def db(self) -> Path:
        return self.tmp / "kestra.db"

    def env(self, columns: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KESTRA_TRIO_", "AUTOKESTRA_", "PYTEST_"))
               # CI/BUILD_NUMBER: pytest then prints its summary lines uncut (docs/testing.md's example)
               and k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "CI", "BUILD_NUMBER")}
        env.update(
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            NO_COLOR="1",
            COLUMNS=str(columns),
            TERM="dumb",
            TZ="UTC",
            KESTRA_TRIO_DB=str(self.db),
            XDG_DATA_HOME=str(self.tmp / "xdg"),
            PYTHONDONTWRITEBYTECODE="1",
            GEN_DOCS_REPO=str(REPO),
        )
        env.pop("LINES", None)
        env.pop("VIRTUAL_ENV", None)
        return env

    def last(self, workflow: str | None, wait: float) -> str:
        deadline = time.monotonic() + wait
        query = "SELECT id FROM executions {} ORDER BY created_at DESC, rowid DESC LIMIT 1"
        while True:
            if self.db.exists():
                con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=15)
                try:
                    if workflow is None:
                        row = con.execute(query.format("")).fetchone()
                    else:
                        row = con.execute(query.format("WHERE workflow_id = ?"), (workflow,)).fetchone()
                except sqlite3.OperationalError:  # schema not created yet
                    row = None
                finally:
                    con.close()
                if row:
                    return row[0]
            if time.monotonic() >= deadline:
                what = f"of workflow {workflow!r}" if workflow else "at all"
                raise GenError(f"no execution {what} in the database")
            time.sleep(0.05)

    def resolve(self, command: str) -> str:
        def one(m: re.Match[str]) -> str:
            execution_id = self.last(m.group(1), wait=15 if m.group(1) else 0)
            return execution_id[: int(m.group(2))] if m.group(2) else execution_id

        return PLACEHOLDER.sub(one, command)

    def execute(self, directive: Directive) -> Result:
        opts = directive.options
        cwd_opt = opts.get("cwd", ".")
        cwd = self.tmp if cwd_opt == "tmp" else (REPO / cwd_opt)
        command = self.resolve(directive.command)
        started = time.monotonic()
        try:
            proc = subprocess.run(
                ["bash", "-c", command],
                cwd=cwd,
                env=self.env(int(opts.get("columns", "100"))),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=float(opts.get("timeout", "60")),
            )
        except subprocess.TimeoutExpired as exc:
            raise GenError(f"timed out after {exc.timeout} s") from None
        output = proc.stdout.decode("utf-8", errors="backslashreplace")
        return Result(command, output, proc.returncode, time.monotonic() - started)

    def problem(self, directive: Directive, message: str) -> None:
        self.problems.append(Problem(str(self.path.relative_to(REPO)), directive.line, directive.command, message))

    def run_checked(self, directive: Directive) -> Result | None:
        """Run (or, for job=NAME, wait for) one command; None and a problem if it misbehaved."""
        if "job" in directive.options:
            name = directive.options["job"]
            job = self.jobs.get(name)
            if job is None:
                self.problem(directive, f"no gen-bg job named {name!r} above")
                return None
            job.thread.join()
            if job.error:
                self.problem(directive, job.error)
                return None
            result, expected = job.result, job.directive.expected_exit
        else:
            try:
                result = self.execute(directive)
            except GenError as exc:
                self.problem(directive, str(exc))
                return None
            expected = directive.expected_exit
        assert result is not None
        if result.exit_code != expected:
            tail = "\n".join("    " + line for line in result.output.rstrip().splitlines()[-8:])
            self.problem(directive, f"exited {result.exit_code}, the doc declares exit={expected}\n{tail}")
            return None
        return result

    def start_job(self, directive: Directive) -> None:
        name = directive.options.get("name")
        if not name:
            self.problem(directive, "gen-bg needs name=NAME")
            return
        delay = float(directive.options.get("delay", "0"))

        def work() -> None:
            time.sleep(delay)
            try:
                job.result = self.execute(directive)
            except GenError as exc:
                job.error = str(exc)

        job = Job(directive, threading.Thread(target=work, name=f"gen-bg {name}", daemon=True))
        self.jobs[name] = job
        job.thread.start()

    def finish_jobs(self) -> None:
        for job in self.jobs.values():
            job.thread.join()
            if job.error:
                self.problem(job.directive, job.error)
            elif job.result and job.result.exit_code != job.directive.expected_exit:
                self.problem(job.directive, f"exited {job.result.exit_code}, the doc declares "
                                            f"exit={job.directive.expected_exit}")


def render(directive: Directive, result: Result) -> list[str]:
    lines = [line.rstrip() for line in result.output.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if directive.options.get("show", "all") == "output":
        return lines
    return [f"$ {result.command}", *lines, f"[exit {result.exit_code}]"]


# --- masking for --check -------------------------------------------------------------

MASKS = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?Z?( UTC)?"), "<TS>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\.\d{3}\b"), "<TIME>"),
    (re.compile(r"\b[0-9a-f]{16}\b"), "<ID>"),
    # an id prefix right after the command, even one with only digits (e.g. `logs 667756`)
    (re.compile(r"(execution (?:logs|inspect|cancel) )[0-9a-f]{4,15}\b"), r"\1<ID>"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{4,15}\b"), "<ID>"),  # abbreviated ids
    # a worker id (12 hex digits, maybe all digits) in a private queue name or an audit event
    (re.compile(r"(local:|worker_id=|\"worker_id\": \")[0-9a-f]{4,16}\b"), r"\1<ID>"),
    (re.compile(r"\b([a-z_]*(?:pid|_ms|_bytes))=-?\d+"), r"\1=<N>"),
    (re.compile(r'("[a-z_]*(?:pid|_ms|_bytes|_at|last_cleanup)"\s*:\s*)-?\d+'), r"\1<N>"),
    (re.compile(r"\b(pid|process group|engine_pid)\s+\d+"), r"\1 <N>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(B|KB|MB|GB)\b"), "<SIZE>"),
    (re.compile(r"RETENTION_DAYS=\d+"), "RETENTION_DAYS=<N>"),
    (re.compile(r"(?<![\w.])\d+(\.\d+)?(ms|s|m|h)\b"), "<DUR>"),
    (re.compile(r"[█░]+"), "<BAR>"),
    (re.compile(r"\b1\d{12}\b"), "<EPOCH>"),
    (re.compile(r"/tmp/[^\s\"']+"), "<TMP>"),
    # a checkout elsewhere (docs generated in /work/main, checked in a CI clone)
    (re.compile(r"(?:/[\w.-]+)+(?=/(?:plugins|examples)/)"), "<REPO>"),
]


def mask(lines: list[str]) -> list[str]:
    out = []
    in_progress = any(line.startswith("Execution in progress") for line in lines)
    for line in lines:
        if in_progress:  # a snapshot of a running execution: how many lines it has logged so far varies
            line = re.sub(r"^(Log entries\s+)\d+", r"\1<N>", line)
        line = line.replace(str(REPO), "<REPO>")  # the checkout may live anywhere
        for pattern, repl in MASKS:
            line = pattern.sub(repl, line)
        line = " ".join(line.split())
        if line:
            out.append(line)
    return sorted(out)


# --- one markdown file ---------------------------------------------------------------

def process(path: Path, check: bool) -> tuple[str, str, DocRun]:
    """Return (old text, new text, run)."""
    old = path.read_text(encoding="utf-8")
    src = old.splitlines(keepends=False)
    trailing_newline = old.endswith("\n")
    out: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kestra-gen-docs-") as tmp:
        run = DocRun(path, Path(tmp))
        i = 0
        while i < len(src):
            match = DIRECTIVE.match(src[i])
            if not match:
                out.append(src[i])
                i += 1
                continue
            kind = match.group(1)
            if kind != "gen":
                directive = parse_directive(kind, match.group(2), i + 1)
                out.append(src[i])
                i += 1
                if kind == "gen-bg":
                    run.start_job(directive)
                else:
                    run.run_checked(directive)
                continue
            # one or more gen: lines, then (optionally) a fenced block
            directives = []
            while i < len(src) and (match := DIRECTIVE.match(src[i])) and match.group(1) == "gen":
                directives.append(parse_directive("gen", match.group(2), i + 1))
                out.append(src[i])
                i += 1
            fence = FENCE.match(src[i]) if i < len(src) else None
            if fence:
                ticks, info = fence.group(1), fence.group(2)
                end = i + 1
                while end < len(src) and not (src[end].startswith(ticks) and src[end].strip() == ticks):
                    end += 1
                if end >= len(src):
                    raise GenError(f"{path}:{i + 1}: unterminated fenced block")
                old_body = src[i + 1:end]
                after = end + 1
            else:
                ticks, info, old_body, after = "```", "console", [], i
            new_body: list[str] = []
            ok = True
            for directive in directives:
                result = run.run_checked(directive)
                if result is None:
                    ok = False
                    break
                new_body.extend(render(directive, result))
            if not ok:
                new_body = old_body
            elif check and fence and mask(old_body) != mask(new_body):
                diff = difflib.unified_diff(mask(old_body), mask(new_body), "doc (masked, sorted)",
                                            "real (masked, sorted)", lineterm="", n=0)
                detail = "\n".join("    " + line for line in list(diff)[2:40])
                run.problems.append(Problem(str(path.relative_to(REPO)), directives[0].line,
                                            directives[0].command, f"output changed:\n{detail}"))
            elif check and not fence:
                run.problems.append(Problem(str(path.relative_to(REPO)), directives[0].line,
                                            directives[0].command, "no generated block below"))
            out.append(f"{ticks}{info}")
            out.extend(new_body)
            out.append(ticks)
            i = after
        run.finish_jobs()
    run.seconds = time.monotonic() - started
    new = "\n".join(out) + ("\n" if trailing_newline else "")
    return old, new, run


# --- demo database for docs/storage.md -----------------------------------------------

def demo_db(path: str) -> None:
    """Fill a migrated database: 3,000 log lines (2,500 of them 40 days old), 12 audit events
    (6 of them 40 days old), all belonging to one execution."""
    day = 86_400_000
    now = int(time.time() * 1000)
    old = now - 40 * day
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "INSERT INTO executions (id, workflow_id, namespace, state, reason_code, created_at, started_at,"
            " ended_at, updated_at, log_entry_count, task_count) "
            "VALUES ('0d3e0d3e0d3e0d3e', 'demo', 'examples', 'SUCCESS', 'COMPLETED', ?, ?, ?, ?, 3000, 1)",
            (old, old, now, now),
        )
        con.executemany(
            "INSERT INTO execution_logs (execution_id, task_id, timestamp, level, source, message, metadata) "
            "VALUES ('0d3e0d3e0d3e0d3e', 'load', ?, 'INFO', 'plugin:core/shell.run', ?, "
            "'{\"plugin\":\"core/shell\",\"action\":\"run\",\"attempt\":1,\"stream\":\"stdout\"}')",
            [(old + i if i < 2500 else now - 3000 + i, f"loaded row {i}: " + "x" * 120) for i in range(3000)],
        )
        con.executemany(
            "INSERT INTO execution_audit_events (execution_id, event_type, timestamp, metadata) "
            "VALUES ('0d3e0d3e0d3e0d3e', 'STATE_CHANGE', ?, '{\"from_state\":\"PENDING\",\"to_state\":\"RUNNING\"}')",
            [(old + i if i < 6 else now - 12 + i,) for i in range(12)],
        )
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


# --- main ----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo-db"]:
        demo_db(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help=f"markdown files (default: {' '.join(DEFAULT_FILES)})")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    args = parser.parse_args(argv)
    if not (VENV_BIN / "kestra-trio").exists():
        print(f"gen_docs: {VENV_BIN / 'kestra-trio'} not found (run ./scripts/quickstart.sh)", file=sys.stderr)
        return 2
    paths = [Path(f).resolve() if Path(f).is_absolute() else (Path.cwd() / f).resolve() for f in args.files] \
        or [REPO / f for f in DEFAULT_FILES]
    started = time.monotonic()
    problems: list[Problem] = []
    # files are independent (one scratch directory and database each): run them in parallel
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(paths)) as pool:
        futures = {path: pool.submit(process, path, args.check) for path in paths}
        for path in paths:
            old, new, run = futures[path].result()
            rel = path.relative_to(REPO)
            problems.extend(run.problems)
            blocks = sum(1 for line in new.splitlines() if DIRECTIVE.match(line))
            status = ""
            if not args.check and new != old:
                path.write_text(new, encoding="utf-8")
                status = "  rewritten"
            print(f"{rel}: {blocks} directive(s), {run.seconds:.1f}s{status}", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"gen_docs: {len(problems)} problem(s) in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
