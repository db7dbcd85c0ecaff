"""core/python.script: exec an inline script; its `outputs` dict is the result."""

from kestra_trio.sdk import Plugin

plugin = Plugin("python")


@plugin.action("script")
def script(ctx, inputs):
    outputs: dict = {}
    namespace = {"__name__": "__kestra_script__", "ctx": ctx, "inputs": inputs.get("inputs", {}), "outputs": outputs}
    code = compile(inputs["script"], "<script>", "exec")
    exec(code, namespace)  # noqa: S102 - running the user's script is this action's purpose
    return namespace["outputs"]


if __name__ == "__main__":
    plugin.main()
