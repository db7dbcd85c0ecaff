"""core/shell.run on the SDK (the engine normally runs this action itself: runtime builtin)."""

import json
import os
import subprocess

from kestra_trio.sdk import Plugin

plugin = Plugin("shell")


@plugin.action("run")
def run(ctx, inputs):
    command = inputs.get("command")
    argv = ["/bin/sh", "-c", command] if command is not None else [str(a) for a in inputs["argv"]]
    # numbers and booleans as JSON writes them (true, not Python's True), like the builtin
    env = {**os.environ, **{str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (inputs.get("env") or {}).items()}}
    cwd = inputs.get("cwd") or None
    try:
        # inherit our stdout/stderr: the command's lines stream straight to the engine
        code = subprocess.call(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    except OSError as exc:
        ctx.fail(f"cannot start {argv[0]}: {exc.strerror or exc}")
    if code != 0:
        ctx.fail(f"command exited with code {code}", exit_code=code if 0 < code < 256 else 1)
    return {"exit_code": code}


if __name__ == "__main__":
    plugin.main()
