"""core/log.message: one log record at the requested level."""

from kestra_trio.sdk import Plugin

plugin = Plugin("log")


@plugin.action("message")
def message(ctx, inputs):
    ctx.log.log(inputs.get("level", "INFO"), inputs["message"])
    return {}


if __name__ == "__main__":
    plugin.main()
