"""GroupReaper: plugin process groups die even when the engine is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import trio

from kestra_trio.plugin_runtime.reaper import open_group_reaper

ENGINE_STAND_IN = textwrap.dedent(
    """
    import functools, sys, trio
    from kestra_trio.plugin_runtime.process import run_action
    from kestra_trio.plugin_runtime.reaper import open_group_reaper
    from kestra_trio.plugin_runtime.registry import PluginRegistry
    from kestra_trio.plugin_runtime.runtime import Invocation

    async def main():
        manifest, action = PluginRegistry.discover(environ={}).resolve("core/shell.run")
        inputs = {"command": "sleep 100 & sleep 100 & echo ready; wait"}
        inv = Invocation("e", "t", 1, "core/shell.run", manifest, action, inputs)
        send, receive = trio.open_memory_channel(100)
        async with open_group_reaper() as reaper, trio.open_nursery() as nursery:
            handle = await nursery.start(functools.partial(run_action, inv, log_send=send, reaper=reaper))
            async for item in receive:
                if any(e.message == "ready" for e in (item if isinstance(item, list) else [item])):
                    print(handle.pgid, reaper.pid, flush=True)

    trio.run(main)
    """
)


def group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except OSError:
            pass
    return members


async def wait_until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.02)
        return True
    return False


async def test_group_dies_when_the_engine_is_sigkilled() -> None:
    engine = await trio.lowlevel.open_process(
        [sys.executable, "-c", ENGINE_STAND_IN], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert engine.stdout is not None
        with trio.fail_after(60):
            line = b""
            while not line.endswith(b"\n"):
                line += await engine.stdout.receive_some(100)
        pgid, watchdog = map(int, line.split())
        assert len(group_members(pgid)) >= 3  # sh and both sleeps
        engine.send_signal(signal.SIGKILL)
        await engine.wait()
        assert await wait_until(lambda: not group_members(pgid), timeout=30), group_members(pgid)
        assert await wait_until(lambda: not psutil.pid_exists(watchdog) or _zombie(watchdog), timeout=30)
    finally:
        if engine.returncode is None:
            engine.kill()
        await engine.wait()
        if engine.stdout is not None:
            await engine.stdout.aclose()


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_closing_the_reaper_kills_registered_groups_only() -> None:
    registered = await trio.lowlevel.open_process(["sleep", "100"], start_new_session=True)
    forgotten = await trio.lowlevel.open_process(["sleep", "100"], start_new_session=True)
    try:
        async with open_group_reaper() as reaper:
            await reaper.register(registered.pid)
            await reaper.register(forgotten.pid)
            await reaper.unregister(forgotten.pid)
            watchdog = reaper.pid
            assert reaper.registered == {registered.pid} and reaper.alive
        with trio.fail_after(30):
            assert await registered.wait() == -signal.SIGKILL
        assert forgotten.returncode is None and _zombie(watchdog)
    finally:
        for proc in (registered, forgotten):
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


async def test_a_dead_watchdog_does_not_break_the_engine() -> None:
    async with open_group_reaper() as reaper:
        os.kill(reaper.pid, signal.SIGKILL)
        assert await wait_until(lambda: _zombie(reaper.pid), timeout=30)  # dead: its end of the pipe is closed
        await reaper.register(12345)  # no exception: registration becomes a no-op
        await reaper.register(12346)
        assert not reaper.alive
