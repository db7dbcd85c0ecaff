"""Plugin discovery: bundled, KESTRA_TRIO_PLUGIN_PATH, --plugins; lookups with suggestions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kestra_trio.errors import ManifestInvalid, PluginNotFound
from kestra_trio.plugin_runtime.registry import PluginRegistry, UnknownTaskType

BUNDLED = {
    "core/shell.run",
    "core/log.message",
    "core/python.script",
    "core/http.request",
    "core/util.sleep",
    "core/util.fail",
}


def make_plugin(root: Path, name: str, *, namespace: str = "acme", version: str = "1.0.0", extra: str = "") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "plugin.yaml").write_text(
        f'name: {name}\nnamespace: {namespace}\nversion: "{version}"\ncommand: ["true"]\n'
        f"actions:\n  - name: go\n    input: {{type: object}}\n{extra}"
    )
    return folder


def test_bundled_plugins_are_found() -> None:
    registry = PluginRegistry.discover(environ={})
    assert BUNDLED <= set(registry.known_types())
    assert registry.errors == [] and registry.warnings == []
    manifest, action = registry.resolve("core/shell.run")
    assert manifest.runtime == "builtin" and action.name == "run"
    assert registry.input_schema("core/log.message")["required"] == ["message"]


def test_plugin_path_env_and_extra_dirs(tmp_path: Path) -> None:
    one, two, three = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    make_plugin(one, "alpha")
    make_plugin(two, "beta")
    make_plugin(three, "gamma")
    environ = {"KESTRA_TRIO_PLUGIN_PATH": os.pathsep.join([str(one), "", str(two)])}
    registry = PluginRegistry.discover(extra_dirs=[three], environ=environ)
    assert {"acme/alpha.go", "acme/beta.go", "acme/gamma.go"} <= set(registry.known_types())
    assert registry.search_path[-3:] == [one, two, three]


def test_later_plugin_overrides_earlier_with_warning(tmp_path: Path) -> None:
    make_plugin(tmp_path / "a", "shell", namespace="core", version="9.0.0")
    registry = PluginRegistry.discover(extra_dirs=[tmp_path / "a"], environ={})
    manifest, _ = registry.resolve("core/shell.go")
    assert manifest.version == "9.0.0"
    assert any("plugin core/shell from" in w and "overrides" in w for w in registry.warnings)


def test_invalid_manifest_is_collected_not_fatal(tmp_path: Path) -> None:
    make_plugin(tmp_path, "good")
    make_plugin(tmp_path, "bad", version="1.0")
    (tmp_path / "not-a-plugin").mkdir()
    registry = PluginRegistry.discover(extra_dirs=[tmp_path], environ={})
    assert "acme/good.go" in registry.known_types()
    assert len(registry.errors) == 1 and "version must be valid semver" in str(registry.errors[0])
    # a task using the broken plugin is told why, not "no plugin acme/bad"
    with pytest.raises(UnknownTaskType) as info:
        registry.resolve("acme/bad.go")
    assert str(info.value) == (
        "unknown task type 'acme/bad.go': the manifest of plugin acme/bad is invalid "
        f"(version must be valid semver (e.g., 1.0.0), got '1.0'); see `kestra-trio plugin validate {tmp_path / 'bad'}`"
    )
    # a schema that only fails when first used is reported in one line, worded as `plugin validate` words it
    (tmp_path / "good" / "plugin.yaml").write_text(
        'name: good\nnamespace: acme\nversion: "1.0.0"\ncommand: ["true"]\nactions:\n  - name: go\n    input: {type: text}\n'
    )
    lazy = PluginRegistry.discover(extra_dirs=[tmp_path], environ={})
    with pytest.raises(ManifestInvalid) as schema_info:
        lazy.resolve("acme/good.go")
    assert "\n" not in str(schema_info.value)
    assert str(schema_info.value).startswith("the manifest of plugin acme/good is invalid (actions[0] (go).input is not a valid")
    env_missing = PluginRegistry.discover(environ={"KESTRA_TRIO_PLUGIN_PATH": str(tmp_path / "missing")})
    assert any("cannot be read" in w for w in env_missing.warnings)


def test_a_plugins_option_naming_no_directory_is_an_error(tmp_path: Path) -> None:
    # a typo in --plugins used to be ignored, so every task looked like "no plugin ..."
    with pytest.raises(PluginNotFound, match=f"--plugins {tmp_path / 'missing'}: no such directory"):
        PluginRegistry.discover(extra_dirs=[tmp_path / "missing"], environ={})


@pytest.mark.parametrize(
    ("task_type", "message"),
    [
        ("core/shel.run", "unknown task type 'core/shel.run': no plugin core/shel (did you mean core/shell?)"),
        ("core/shell.rn", "plugin core/shell has no action 'rn' (did you mean run?); its actions: run"),
        ("zzz/qqq.x", "unknown task type 'zzz/qqq.x': no plugin zzz/qqq"),
        ("shell", "invalid task type 'shell': expected namespace/plugin.action"),
    ],
)
def test_did_you_mean(task_type: str, message: str) -> None:
    registry = PluginRegistry.discover(environ={})
    with pytest.raises(PluginNotFound) as info:
        registry.resolve(task_type)
    assert message in str(info.value)
    assert "did you mean" not in message or str(info.value).count("did you mean") == 1
    with pytest.raises(LookupError):  # the ActionCatalog contract
        registry.input_schema(task_type)
    assert task_type not in registry


def test_schemas_are_checked_on_first_use(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path, "odd")
    text = (folder / "plugin.yaml").read_text().replace("{type: object}", "{type: 12}")
    (folder / "plugin.yaml").write_text(text)
    registry = PluginRegistry.discover(extra_dirs=[tmp_path], environ={})
    assert "acme/odd.go" in registry.known_types()  # discovery stays cheap
    with pytest.raises(ManifestInvalid, match="not a valid JSON Schema"):
        registry.resolve("acme/odd.go")
    with pytest.raises(LookupError):
        registry.input_schema("acme/odd.go")
    registry.check_all()
    assert "acme/odd.go" not in registry.known_types() and registry.errors


def test_unknown_task_type_is_both_errors() -> None:
    assert issubclass(UnknownTaskType, PluginNotFound) and issubclass(UnknownTaskType, LookupError)


# ---------------------------------------------------------------- `kestra-trio plugin` (in-process)


def test_cli_plugin_list_json_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kestra_trio.cli import main

    make_plugin(tmp_path, "alpha")
    assert main(["plugin", "list", "--json", "--plugins", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"core/shell.run", "acme/alpha.go"} <= {row["type"] for row in rows}

    assert main(["plugin", "validate", str(tmp_path / "alpha")]) == 0
    assert "ok: acme/alpha 1.0.0 (1 action(s): acme/alpha.go)" in capsys.readouterr().out
    make_plugin(tmp_path, "bad", version="1")
    assert main(["plugin", "validate", str(tmp_path / "bad")]) == 4
    assert "version must be valid semver (e.g., 1.0.0)" in capsys.readouterr().out
    # a manifest that parses but whose program cannot run: found now, not as PLUGIN_NOT_STARTED later
    script = make_plugin(tmp_path, "script", extra="").joinpath("plugin.yaml")
    script.write_text(script.read_text().replace('command: ["true"]', 'command: ["./run.sh"]'))
    (script.parent / "run.sh").write_text("#!/bin/sh\n")
    assert main(["plugin", "validate", str(script.parent)]) == 4
    assert "command program './run.sh' is not an executable file (chmod +x" in capsys.readouterr().out
    (script.parent / "run.sh").chmod(0o755)
    assert main(["plugin", "validate", str(script.parent)]) == 0
    capsys.readouterr()
    script.write_text(script.read_text().replace('"./run.sh"', '"no-such-program-kt"'))
    assert main(["plugin", "validate", str(script.parent)]) == 4
    assert "command program 'no-such-program-kt' is not found on PATH" in capsys.readouterr().out


def test_cli_plugin_inspect(capsys: pytest.CaptureFixture[str]) -> None:
    from kestra_trio.cli import main

    assert main(["plugin", "inspect", "core/shell", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "core/shell" and data["actions"][0]["input"]["oneOf"]
    assert main(["plugin", "inspect", "core/shel"]) == 4
    assert "no plugin core/shel (did you mean core/shell?)" in capsys.readouterr().err
    assert main(["plugin", "inspect", "core/util.sleep", "--json"]) == 0  # a task type: that action only
    assert [a["type"] for a in json.loads(capsys.readouterr().out)["actions"]] == ["core/util.sleep"]
    assert main(["plugin", "inspect", "core/shell.nope"]) == 4  # not the whole plugin, as if it existed
    assert "plugin core/shell has no action 'nope'; its actions: run" in capsys.readouterr().err
