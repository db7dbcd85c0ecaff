"""`kestra-trio validate` and `kestra-trio schema` run as the installed program."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

REPO = Path(__file__).parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
BROKEN = REPO / "tests" / "model" / "corpus" / "broken"


def kestra_trio(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kestra_trio", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_files_exit_0() -> None:
    result = kestra_trio("validate", *(p.relative_to(REPO) for p in EXAMPLES))
    assert result.returncode == 0, result.stdout + result.stderr
    # a restricted workflow's "ok" is followed by indented lines saying what it may use
    assert [line for line in result.stdout.splitlines() if not line.startswith(" ")] == [
        f"examples/{p.name}: ok" for p in EXAMPLES
    ]
    assert result.stderr == ""


def test_invalid_file_prints_every_issue_and_exits_1() -> None:
    result = kestra_trio("validate", "cycle_3.yaml", "unknown_need.yaml", cwd=BROKEN)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "cycle_3.yaml:7:12 tasks[1].needs: dependency cycle (each task needs the next): a -> c -> b -> a" in lines
    assert "unknown_need.yaml:7:13 tasks[1].needs[0]: unknown task 'extrct' (did you mean 'extract'?)" in lines
    assert "Traceback" not in result.stdout + result.stderr


def test_mixed_valid_and_invalid_exits_1() -> None:
    result = kestra_trio("validate", EXAMPLES[0], BROKEN / "empty_tasks.yaml")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{EXAMPLES[0]}: ok",
        f"{BROKEN / 'empty_tasks.yaml'}:2:8 tasks: a workflow needs at least one task",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\xff\xfe garbage \x80", "not UTF-8 text"),
        (b"a: [1, 2\n", "not valid YAML"),
        (b"", "file is empty"),
        (b"- just\n- a list\n", "top level must be a mapping"),
        (b"a: !!python/object/apply:os.system [echo hi]\n", "unsupported YAML tag"),
        (b"[" * 100_000, "nesting is deeper than"),
    ],
)
def test_garbage_gives_one_line_and_no_traceback(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(content)
    result = kestra_trio("validate", path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith(str(path)) and expected in line


def test_missing_file_and_directory(tmp_path: Path) -> None:
    result = kestra_trio("validate", tmp_path / "nope.yaml", tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{tmp_path / 'nope.yaml'}: cannot read file: {os.strerror(errno.ENOENT)}",
        f"{tmp_path}: is a directory, not a workflow file",
    ]


def test_schema_prints_the_json_schema() -> None:
    result = kestra_trio("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "tasks" in schema["properties"]
