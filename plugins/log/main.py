"""core/log.message: one log record at the requested level."""

from kestra_trio.sdk import Plugin

plugin = Plugin("log")


@plugin.action("message")
def message(ctx, inputs):
    # a YAML block (`message: |`) ends with a newline that is not part of the message
    ctx.log.log(inputs.get("level", "INFO"), inputs["message"].rstrip("\n"))
    return {}


if __name__ == "__main__":
    plugin.main()
