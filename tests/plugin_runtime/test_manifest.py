"""plugin.yaml loading: valid manifests, every problem reported at once, warnings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kestra_trio.errors import ManifestInvalid
from kestra_trio.plugin_runtime.manifest import load_manifest

VALID = """\
name: my-plugin
namespace: acme
version: 1.2.3-beta.1+build.5
description: does things
author: someone
license: MIT
command: ["{python}", "-S", "main.py", "--flag", "bin/tool"]
actions:
  - name: go
    description: go somewhere
    input: {type: object, properties: {x: {type: integer}}, required: [x]}
    output: {type: object}
  - name: stop
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "plugin.yaml").write_text(text)
    return tmp_path


def test_valid_manifest(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("")
    manifest = load_manifest(write(tmp_path, VALID))
    assert manifest.full_name == "acme/my-plugin"
    assert manifest.version == "1.2.3-beta.1+build.5"
    assert manifest.task_types() == ["acme/my-plugin.go", "acme/my-plugin.stop"]
    assert manifest.command[0] == "{python}"
    # {python} is the engine's interpreter; existing files are made absolute; others kept
    assert manifest.argv == (sys.executable, "-S", str(tmp_path.resolve() / "main.py"), "--flag", "bin/tool")
    go = manifest.action("go")
    assert go is not None and go.input_schema["required"] == ["x"]
    stop = manifest.action("stop")
    assert stop is not None and stop.input_schema is None
    assert manifest.warnings == ()
    assert load_manifest(tmp_path / "plugin.yaml") == manifest  # file or folder


def test_every_problem_is_listed_with_the_file(tmp_path: Path) -> None:
    bad = """\
name: Bad_Name
namespace: ok
version: "1.0"
command: run.sh
actions:
  - name: a
    input: {type: nope}
  - name: a
  - 7
"""
    with pytest.raises(ManifestInvalid) as info:
        load_manifest(write(tmp_path, bad))
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'plugin.yaml'}: 6 problem(s):")
    assert "version must be valid semver (e.g., 1.0.0), got '1.0'" in text
    assert "name must be kebab-case" in text
    assert "command must be an argv list" in text
    assert "actions[0] (a).input is not a valid JSON Schema at type" in text
    assert "duplicate action name" in text
    assert "actions[2] must be a mapping" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1.0\n", "version must be valid semver (e.g., 1.0.0) written as a quoted string"),
        ('version: "01.0.0"\n', "version must be valid semver (e.g., 1.0.0)"),
        ("actions: []\n", "actions must be a non-empty list"),
        ("runtime: docker\n", "runtime must be 'process' or 'builtin'"),
        ("command: []\n", "command must be a non-empty list of non-empty strings"),
    ],
)
def test_single_problems(tmp_path: Path, text: str, message: str) -> None:
    base = {"name": "p", "namespace": "n", "version": '"1.0.0"', "command": '["x"]', "actions": "[{name: a}]"}
    key = text.split(":", 1)[0]
    body = "".join(f"{k}: {v}\n" for k, v in base.items() if k != key) + text
    with pytest.raises(ManifestInvalid, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_manifest(write(tmp_path, body))


def test_missing_required_fields(tmp_path: Path) -> None:
    with pytest.raises(ManifestInvalid) as info:
        load_manifest(write(tmp_path, "description: x\n"))
    for field in ("name is required", "namespace is required", "version is required", "command is required"):
        assert field in str(info.value)


def test_unknown_fields_are_warnings_not_errors(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, VALID + "homepage: https://x\n"))
    assert manifest.warnings == (f"{tmp_path / 'plugin.yaml'}: unknown field 'homepage' ignored",)
    text = VALID.replace("  - name: stop\n", "  - name: stop\n    timeout: 3\n")
    assert "actions[1] (stop): unknown field 'timeout' ignored" in load_manifest(write(tmp_path, text)).warnings[0]


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestInvalid, match=r"not valid YAML \(line 2, column 1\)"):
        load_manifest(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ManifestInvalid, match="must be a YAML mapping"):
        load_manifest(write(tmp_path, "- a list\n"))
    with pytest.raises(ManifestInvalid, match="cannot be read"):
        load_manifest(tmp_path / "nope")


def test_builtin_runtime_needs_a_known_type_or_a_command(tmp_path: Path) -> None:
    text = 'name: x\nnamespace: y\nversion: "1.0.0"\nruntime: builtin\nactions: [{name: a}]\n'
    with pytest.raises(ManifestInvalid, match="runtime: builtin is only available for core/shell.run"):
        load_manifest(write(tmp_path, text))
    shell = 'name: shell\nnamespace: core\nversion: "1.0.0"\nruntime: builtin\nactions: [{name: run}]\n'
    assert load_manifest(write(tmp_path, shell)).runtime == "builtin"


def test_schema_check_can_be_deferred(tmp_path: Path) -> None:
    text = VALID.replace("input: {type: object,", "input: {type: 12,")
    with pytest.raises(ManifestInvalid):
        load_manifest(write(tmp_path, text))
    assert load_manifest(write(tmp_path, text), check_schemas=False).action("go") is not None
