#!/usr/bin/env python
"""Speed of the pure model on big and hostile input: the figures the test suite used to time.

Tests assert what these inputs produce (a workflow, a refusal in our words); how long that
takes is measured here, in-process, as the median of --repeat runs, against the bound the
tests used to assert (a quadratic implementation misses it by far). Each case runs with
libyaml's parser and with PyYAML's pure-Python one (what a PyYAML built without libyaml
uses); a 10,000-task file through the pure-Python parser is reported, not judged:

    .venv/bin/python scripts/bench_model.py              # every case, 5 repetitions
    .venv/bin/python scripts/bench_model.py --repeat 1

Exits 1 if a case misses its target or does not produce what it should.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import fmt, print_header, print_table, verdict  # noqa: E402

import yaml  # noqa: E402

from kestra_trio.errors import WorkflowError  # noqa: E402
from kestra_trio.model.dag import Dag, find_cycles  # noqa: E402
from kestra_trio.model.loading import MAX_DEPTH, load_workflow_text  # noqa: E402
from kestra_trio.model.templates import scan_string  # noqa: E402
from kestra_trio.model.workflow import TaskSpec  # noqa: E402


def refused(text: str, words: str) -> Callable[[], None]:
    def run() -> None:
        try:
            load_workflow_text(text, "wf.yaml")
        except WorkflowError as exc:
            if words not in str(exc):
                raise AssertionError(f"refused in other words: {exc}") from None
        else:
            raise AssertionError("not refused")

    return run


def chain_dag() -> None:
    count = 10_000
    chain = [TaskSpec(id="t0", type="core/shell.run")]
    chain += [TaskSpec(id=f"t{i}", type="core/shell.run", needs=(f"t{i - 1}",)) for i in range(1, count)]
    dag = Dag(chain)
    assert dag.topological_order()[-1] == f"t{count - 1}" and len(dag.descendants("t0")) == count - 1
    assert len(find_cycles({**dag.needs, "t0": (f"t{count - 1}",)})[0]) == count + 1


def fan_dag() -> None:
    width = 10_000
    specs = [TaskSpec(id="root", type="core/shell.run")]
    specs += [TaskSpec(id=f"w{i}", type="core/shell.run", needs=("root",)) for i in range(width)]
    specs.append(TaskSpec(id="join", type="core/shell.run", needs=tuple(f"w{i}" for i in range(width))))
    dag = Dag(specs)
    assert dag.topological_order()[-1] == "join" and len(dag.ancestors("join")) == width + 1


def big_workflow() -> None:
    lines = ["id: big", "tasks:", "  - {id: t0, type: core/shell.run}"]
    lines += [
        f"  - {{id: t{i}, type: core/shell.run, needs: [t{i - 1}], "
        f"inputs: {{command: 'echo {{{{ tasks.t{i - 1}.outputs.x }}}}'}}}}"
        for i in range(1, 10_000)
    ]
    assert len(load_workflow_text("\n".join(lines)).tasks) == 10_000


def hostile_templates() -> None:
    for text in ["{{ " * 200_000, "{% a " * 200_000, "${#x} " * 200_000, "{# " * 200_000 + "#}"]:
        assert len(scan_string(text)) <= 1


LAUGHS = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
)
TOO_DEEP = f"nesting is deeper than {MAX_DEPTH} levels"

# (case, function, target seconds with libyaml, target with PyYAML's pure-Python parser or None)
# The targets are the bounds the tests used to assert.
CASES: list[tuple[str, Callable[[], None], float, float | None]] = [
    ("10,000-task chain: order, closure, the one cycle", chain_dag, 5.0, 5.0),
    ("1 → 10,000 → 1 fan-out/fan-in", fan_dag, 5.0, 5.0),
    ("10,000-task templated workflow: load + validate", big_workflow, 10.0, None),
    ("hostile template strings (4 × 200,000 openers)", hostile_templates, 8.0, 8.0),
    ("billion laughs (10^10 values via aliases)", refused(LAUGHS, "after expanding aliases"), 1.0, 1.0),
    ("200,000 × '['", refused("[" * 200_000, TOO_DEEP), 1.0, 1.0),
    ("200,000 × '{a: '", refused("{a: " * 200_000, TOO_DEEP), 1.0, 1.0),
    ("100,000 × '- '", refused("- " * 100_000 + "x", TOO_DEEP), 1.0, 1.0),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print_header("bench_model: the pure model on big and hostile input")
    failed = False
    rows = []
    parsers = [("libyaml", True), ("pure Python", False)] if yaml.__with_libyaml__ else [("pure Python", False)]
    for parser_name, with_libyaml in parsers:
        saved = getattr(yaml, "CSafeLoader", None)
        if not with_libyaml and saved is not None:
            del yaml.CSafeLoader  # what a PyYAML built without libyaml does
        try:
            for name, run, libyaml_target, python_target in CASES:
                target = libyaml_target if with_libyaml else python_target
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    try:
                        run()
                    except AssertionError as exc:
                        print(f"FAILED: {name}: {exc}")
                        failed = True
                        break
                    times.append(time.perf_counter() - started)
                median = statistics.median(times) if times else None
                ok = verdict(median, target) if target is not None else "info"
                failed |= ok not in ("PASS", "info")
                rows.append([parser_name, name, fmt(median, " s"), f"≤ {target:g} s" if target else "-", ok])
        finally:
            if saved is not None:
                yaml.CSafeLoader = saved
    print_table(["YAML parser", "case", f"median of {args.repeat}", "target", ""], rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
