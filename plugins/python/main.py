"""core/python.script: exec an inline script; its `outputs` dict is the result."""

import linecache

from kestra_trio.sdk import Plugin, system_exit_failure

plugin = Plugin("python")


@plugin.action("script")
def script(ctx, inputs):
    __tracebackhide__ = True  # noqa: F841 - the script's traceback starts at the script
    outputs: dict = {}
    namespace = {"__name__": "__kestra_script__", "ctx": ctx, "inputs": inputs.get("inputs", {}), "outputs": outputs}
    source = inputs["script"]
    code = compile(source, "<script>", "exec")
    # so a traceback shows the script's lines, not just their numbers
    linecache.cache["<script>"] = (len(source), None, source.splitlines(keepends=True), "<script>")
    try:
        exec(code, namespace)  # noqa: S102 - running the user's script is this action's purpose
    except SystemExit as exc:
        # sys.exit() / sys.exit(0) / sys.exit(None): done, with the outputs set so far;
        # sys.exit(3) / sys.exit("message"): the task fails saying so
        failure = system_exit_failure(exc, "the script")
        if failure is not None:
            raise failure from None
    return namespace["outputs"]


if __name__ == "__main__":
    plugin.main()
