"""acme/greet.hello: an example plugin on the Python SDK."""

from kestra_trio.sdk import Plugin

plugin = Plugin("greet")


@plugin.action("hello")
def hello(ctx, inputs):
    name = inputs["name"].strip()
    if not name:
        ctx.fail("name is empty")
    ctx.log.info(f"greeting {name}", token_used=bool(inputs.get("token")))
    if inputs.get("token"):
        ctx.log.debug(f"authenticated with {inputs['token']}")  # masked: the engine knows the secret
    return {"text": f"hello {name}"}


if __name__ == "__main__":
    plugin.main()
