"""Validation time of big templated workflows (issue 11: templates on Jinja2).

Three shapes of an N-task chain (each task needs the previous one and reads its outputs):

* `plain`   — `{{ tasks.tK.outputs.rows }}` paths only: the linear scanner, no Jinja;
* `filters` — every task also has `{{ ... | length }}` and `{% if %}`: Jinja's parser;
* `flow`    — plain paths plus run_if and for_each on every task.

Run:  .venv/bin/python scripts/bench_validate.py [--tasks 6000] [--repeat 3]
Prints the median of `load_workflow_text` (YAML parse + every check, no plugin catalog).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kestra_trio.model.loading import load_workflow_text  # noqa: E402
from kestra_trio.model.template_render import _compiled  # noqa: E402
from kestra_trio.model.templates import _analyze  # noqa: E402


def chain(n: int, shape: str) -> str:
    lines = ["id: bench", "inputs:", "  - {name: day, type: string}", "tasks:"]
    for i in range(n):
        lines += [f"  - id: t{i}", "    type: core/shell.run"]
        if i:
            lines.append(f"    needs: [t{i - 1}]")
            ref = f"tasks.t{i - 1}.outputs.rows"
        else:
            ref = "inputs.day"
        if shape == "flow" and i:
            lines.append(f"    run_if: \"{{{{ {ref} != 'skip' }}}}\"")
            lines.append(f"    for_each: \"{{{{ {ref} }}}}\"")
        command = f"./step.sh {{{{ {ref} }}}} --day {{{{ inputs.day }}}}"
        if shape == "filters":
            command += f" {{% if inputs.day %}}--n {{{{ {ref} | length }}}}{{% endif %}}"
        lines.append(f"    inputs: {{command: \"{command}\"}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'shape':<8} {'tasks':>6} {'median s':>9} {'per task':>9}")
    for shape in ("plain", "filters", "flow"):
        text = chain(args.tasks, shape)
        times = []
        for _ in range(args.repeat):
            _analyze.cache_clear()  # cold: as a fresh `kestra-trio validate` process
            _compiled.cache_clear()
            started = time.perf_counter()
            load_workflow_text(text, "bench.yaml")
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        print(f"{shape:<8} {args.tasks:>6} {median:>9.3f} {median / args.tasks * 1e6:>7.0f}µs", flush=True)


if __name__ == "__main__":
    main()
