"""core/util.sleep and core/util.fail."""

import time

from kestra_trio.sdk import Plugin

plugin = Plugin("util")


@plugin.action("sleep")
def sleep(ctx, inputs):
    seconds = float(inputs["seconds"])
    time.sleep(seconds)
    return {"slept": seconds}


@plugin.action("fail")
def fail(ctx, inputs):
    ctx.fail(inputs.get("message", "failed on purpose"), exit_code=int(inputs.get("exit_code", 1)))


if __name__ == "__main__":
    plugin.main()
