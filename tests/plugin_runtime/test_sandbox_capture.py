"""The same capture guarantees in every runtime: the process runtime, bubblewrap and Docker.

Every line arrives (stdout and stderr, in order per stream), levels are classified the
same way, the output cap keeps the tail and warns, the result file carries outputs, and a
cancel stops the plugin after delivering what it wrote. The plugin is a POSIX shell script
(busybox has one, so it also runs in the test image).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

from kestra_trio.model.workflow import Permissions, TaskSpec, Workflow
from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.plugin_runtime.manifest import PluginManifest, load_manifest
from kestra_trio.plugin_runtime.process import ProcessRuntime
from kestra_trio.plugin_runtime.runtime import Invocation, Outcome
from kestra_trio.plugin_runtime.sandbox import SandboxPolicy

from sandbox_support import BWRAP_PROBLEM

RUNTIMES = ["process", "bubblewrap", "docker"]


@pytest.fixture(params=RUNTIMES)
def runtime_kind(request: pytest.FixtureRequest) -> str:
    kind = request.param
    if kind == "bubblewrap" and BWRAP_PROBLEM:
        pytest.skip(BWRAP_PROBLEM)
    if kind == "docker":
        request.getfixturevalue("docker_image")
    return kind


def shell_plugin(folder: Path, script: str) -> PluginManifest:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.sh").write_text(textwrap.dedent(script))
    (folder / "plugin.yaml").write_text(json.dumps({
        "name": "sh", "namespace": "t", "version": "1.0.0", "command": ["/bin/sh", "main.sh"],
        "actions": [{"name": "go"}],
    }))
    return load_manifest(folder)


def make_invocation(kind: str, manifest: PluginManifest, image: str | None = None, secrets: dict[str, str] | None = None) -> Invocation:
    policy = None
    if kind != "process":
        spec = TaskSpec(id="t", type="t/sh.go")
        workflow = Workflow(
            id="w", tasks=(spec,), security="restricted", permissions=Permissions(),
            sandbox="docker" if kind == "docker" else "bubblewrap", image=image,
        )
        policy = SandboxPolicy.for_task(workflow, spec)
    action = manifest.action("go")
    assert action is not None
    return Invocation(
        execution_id="exec-1", task_id="task-1", attempt=1, task_type="t/sh.go", manifest=manifest, action=action,
        inputs={}, secrets=secrets or {}, policy=policy,
    )


def runtime(kind: str, **kwargs: Any) -> Any:
    if kind == "bubblewrap":
        from kestra_trio.plugin_runtime.bwrap import BwrapRuntime

        return BwrapRuntime(**kwargs)
    if kind == "docker":
        from kestra_trio.plugin_runtime.docker import DockerRuntime

        return DockerRuntime(**kwargs)
    return ProcessRuntime(**kwargs)


async def run(kind: str, inv: Invocation, *, cancel_after_line: str | None = None, **kwargs: Any) -> tuple[Outcome | None, list[LogEntry]]:
    send, receive = trio.open_memory_channel[Any](64)
    entries: list[LogEntry] = []
    seen = trio.Event()

    async def consume() -> None:
        async for item in receive:
            for entry in item if isinstance(item, list) else [item]:
                entries.append(entry)
                if cancel_after_line is not None and entry.message == cancel_after_line:
                    seen.set()

    outcome = None
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            with send:
                if cancel_after_line is None:
                    outcome = await runtime(kind, **kwargs).run_action(inv, log_send=send)
                else:
                    async with trio.open_nursery() as inner:
                        async def go() -> None:
                            await runtime(kind, **kwargs).run_action(inv, log_send=send)

                        inner.start_soon(go)
                        await seen.wait()
                        inner.cancel_scope.cancel()
    return outcome, entries


def plugin_lines(entries: list[LogEntry], stream: str) -> list[str]:
    return [e.message for e in entries if e.metadata.get("stream") == stream]


async def test_every_line_levels_and_the_result(runtime_kind: str, tmp_path: Path, docker_image_name: str | None) -> None:
    manifest = shell_plugin(tmp_path / "p", r"""
        i=0
        while [ $i -lt 2000 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done
        echo "ERROR: plain error line"
        echo '{"kt": "log", "level": "DEBUG", "message": "an sdk record", "metadata": {"k": 1}}' >&2
        printf 'no newline at the end'
        printf '{"outputs": {"answer": 42, "text": "ok"}}' > "$KESTRA_TRIO_RESULT_FILE"
    """)
    outcome, entries = await run(runtime_kind, make_invocation(runtime_kind, manifest, docker_image_name))
    assert outcome is not None and outcome.ok, outcome
    assert outcome.outputs == {"answer": 42, "text": "ok"}
    out = plugin_lines(entries, "stdout")
    err = plugin_lines(entries, "stderr")
    assert out[:2000] == [f"out {i}" for i in range(2000)]
    assert out[2000:] == ["ERROR: plain error line", "no newline at the end"]
    assert err[:2000] == [f"err {i}" for i in range(2000)]
    levels = {e.message: e.level for e in entries}
    assert levels["out 1"] == LogLevel.INFO and levels["err 1"] == LogLevel.WARN
    assert levels["ERROR: plain error line"] == LogLevel.ERROR
    assert levels["an sdk record"] == LogLevel.DEBUG


async def test_output_cap_keeps_the_tail_and_warns(runtime_kind: str, tmp_path: Path, docker_image_name: str | None) -> None:
    manifest = shell_plugin(tmp_path / "p", r"""
        i=0
        while [ $i -lt 10000 ]; do echo "line $i padding padding padding padding"; i=$((i+1)); done
    """)
    _, entries = await run(runtime_kind, make_invocation(runtime_kind, manifest, docker_image_name), output_limit=20_000)
    warns = [e for e in entries if e.metadata.get("truncated")]
    assert len(warns) == 1 and warns[0].level == LogLevel.WARN and warns[0].metadata["dropped_lines"] > 5000
    out = plugin_lines(entries, "stdout")
    assert out[0] == "line 0 padding padding padding padding"
    assert out[-1] == "line 9999 padding padding padding padding"
    assert sum(len(line) + 1 for line in out) <= 20_000 + 64 * 1024  # the head, then the 64 KiB tail


async def test_a_failing_plugin_reports_exit_code_and_stderr_tail(runtime_kind: str, tmp_path: Path, docker_image_name: str | None) -> None:
    manifest = shell_plugin(tmp_path / "p", """
        echo "about to fail" >&2
        exit 3
    """)
    outcome, _ = await run(runtime_kind, make_invocation(runtime_kind, manifest, docker_image_name))
    assert outcome is not None and not outcome.ok
    assert outcome.reason_code == "PLUGIN_FAILED" and outcome.exit_code == 3
    assert outcome.error is not None and outcome.error["stderr_tail"] == ["about to fail"]


async def test_cancel_stops_it_after_delivering_its_lines(runtime_kind: str, tmp_path: Path, docker_image_name: str | None) -> None:
    manifest = shell_plugin(tmp_path / "p", """
        trap 'echo "stopping on TERM"; exit 0' TERM
        echo before-cancel
        sleep 60 &
        wait
    """)
    _, entries = await run(
        runtime_kind, make_invocation(runtime_kind, manifest, docker_image_name), cancel_after_line="before-cancel", kill_grace=5.0
    )
    out = plugin_lines(entries, "stdout")
    assert out[0] == "before-cancel"
    assert "stopping on TERM" in out  # SIGTERM reached the plugin, with its grace period


async def test_the_input_message_arrives_on_stdin(runtime_kind: str, tmp_path: Path, docker_image_name: str | None) -> None:
    manifest = shell_plugin(tmp_path / "p", """
        read -r message
        case "$message" in *'"task_id": "task-1"'*|*'"task_id":"task-1"'*) echo got-input ;; *) echo "bad: $message" ;; esac
        printf '{"outputs": {}}' > "$KESTRA_TRIO_RESULT_FILE"
    """)
    outcome, entries = await run(runtime_kind, make_invocation(runtime_kind, manifest, docker_image_name, {"TOKEN": "s3cr3t"}))
    assert outcome is not None and outcome.ok, outcome
    assert plugin_lines(entries, "stdout") == ["got-input"]


@pytest.fixture
def docker_image_name(runtime_kind: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("docker_image") if runtime_kind == "docker" else None



async def test_a_cancel_comes_out_as_a_plain_cancelled(runtime_kind: str, tmp_path: Path, docker_image_name: str | None) -> None:
    """The engine catches `trio.Cancelled` to record CANCELLED: never an ExceptionGroup."""
    manifest = shell_plugin(tmp_path / "p", """
        echo running
        sleep 60
    """)
    inv = make_invocation(runtime_kind, manifest, docker_image_name)
    send, receive = trio.open_memory_channel[Any](64)
    started = trio.Event()
    caught: list[BaseException] = []

    async def consume() -> None:
        async for item in receive:
            if any(e.message == "running" for e in (item if isinstance(item, list) else [item])):
                started.set()

    async def attempt(scope_box: list[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            scope_box.append(scope)
            try:
                await runtime(runtime_kind, kill_grace=0.5).run_action(inv, log_send=send)
            except BaseException as exc:
                caught.append(exc)
                raise

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            box: list[trio.CancelScope] = []
            nursery.start_soon(attempt, box)
            await started.wait()
            box[0].cancel()
            await trio.sleep(0)
            while not caught:
                await trio.sleep(0.05)
            send.close()
    assert type(caught[0]) is trio.Cancelled
