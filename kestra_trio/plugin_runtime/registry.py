"""Task type ("namespace/plugin.action") → manifest, found by scanning plugin folders.

Discovery runs on every `run`, so it only lists folders and parses small YAML files with
the C loader; nothing is cached across processes.

Search order (later wins): bundled plugins, then each directory of
``KESTRA_TRIO_PLUGIN_PATH`` (os.pathsep-separated, in order), then each ``--plugins DIR``.
A later plugin with the same ``namespace/name`` replaces an earlier one, with a warning,
so a user can override a bundled plugin without touching the installation.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from kestra_trio.config import PLUGIN_PATH_ENV
from kestra_trio.errors import ExitCode, ManifestInvalid, PluginNotFound
from kestra_trio.plugin_runtime.manifest import (
    MANIFEST_NAME,
    ActionSpec,
    PluginManifest,
    action_schema_problems,
    load_manifest,
)


class PluginDirectoryNotFound(PluginNotFound):
    """a plugin folder given with --plugins does not exist."""

    exit_code = ExitCode.USAGE  # a mistyped argument, as `run` and `validate` document it


def _declared_name(path: Path) -> str | None:
    """namespace/name as written in a manifest that failed validation, if it says."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8", errors="replace"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError, RecursionError):
        return None
    if isinstance(raw, dict) and isinstance(raw.get("namespace"), str) and isinstance(raw.get("name"), str):
        return f"{raw['namespace']}/{raw['name']}"
    return None


class UnknownTaskType(PluginNotFound, LookupError):
    """no plugin provides this task type; see `kestra-trio plugin list`.

    Also a LookupError, as the model's ActionCatalog protocol expects.
    """


class ActionSchemaInvalid(ManifestInvalid, LookupError):
    """a plugin action's input or output schema is not a valid JSON Schema; fix its plugin.yaml.

    Also a LookupError, so workflow validation reports it like an unknown type.
    """


def bundled_plugin_dirs() -> list[Path]:
    """`<repo>/plugins` in a checkout, `kestra_trio/bundled_plugins` in an installed wheel."""
    package = Path(__file__).resolve().parents[1]  # the kestra_trio package folder
    candidates = [package.parent / "plugins", package / "bundled_plugins"]
    return [path for path in candidates if path.is_dir()][:1]


def _env_dirs(environ: Mapping[str, str]) -> list[Path]:
    raw = environ.get(PLUGIN_PATH_ENV, "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def split_task_type(task_type: str) -> tuple[str, str]:
    """``"core/shell.run"`` → ``("core/shell", "run")``; raises UnknownTaskType when malformed."""
    plugin, dot, action = task_type.rpartition(".")
    if not dot or "/" not in plugin or not action or plugin.startswith("/") or plugin.endswith("/"):
        raise UnknownTaskType(f"invalid task type {task_type!r}: expected namespace/plugin.action (e.g. core/shell.run)")
    return plugin, action


class PluginRegistry:
    """The plugins found by discovery; implements the model's ActionCatalog protocol."""

    def __init__(self) -> None:
        self._plugins: dict[str, PluginManifest] = {}
        #: non-fatal notes (unknown manifest fields, overrides, missing search dirs)
        self.warnings: list[str] = []
        #: manifests that failed to load; the CLI reports them, other plugins still work
        self.errors: list[ManifestInvalid] = []
        #: every folder searched, in order
        self.search_path: list[Path] = []
        self._checked: set[tuple[str, str]] = set()
        #: namespace/name -> why its manifest was refused, so a task using it is told so
        self._broken: dict[str, tuple[ManifestInvalid, Path]] = {}

    @classmethod
    def discover(cls, extra_dirs: Sequence[Path] = (), environ: Mapping[str, str] | None = None) -> PluginRegistry:
        """Scan bundled plugins, then KESTRA_TRIO_PLUGIN_PATH, then ``extra_dirs`` (later wins)."""
        env = os.environ if environ is None else environ
        registry = cls()
        for directory in map(Path, extra_dirs):
            if not directory.is_dir():  # a typo in --plugins must not look like "no plugin"
                raise PluginDirectoryNotFound(f"--plugins {directory}: no such directory")
        for directory in [*bundled_plugin_dirs(), *_env_dirs(env), *map(Path, extra_dirs)]:
            registry.add_dir(directory)
        return registry

    def add_dir(self, directory: Path) -> None:
        """Add every subfolder of ``directory`` that holds a plugin.yaml (or the folder itself)."""
        self.search_path.append(directory)
        if (directory / MANIFEST_NAME).is_file():
            self._load(directory)
            return
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            self.warnings.append(f"plugin directory {directory} cannot be read: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith((".", "_")):
                folder = Path(entry.path)
                if (folder / MANIFEST_NAME).is_file():
                    self._load(folder)

    def add(self, manifest: PluginManifest) -> None:
        """Register a manifest; a later one with the same namespace/name replaces the earlier."""
        previous = self._plugins.get(manifest.full_name)
        if previous is not None and previous.folder != manifest.folder:
            self.warnings.append(f"plugin {manifest.full_name} from {manifest.folder} overrides {previous.folder}")
        self._plugins[manifest.full_name] = manifest
        self.warnings.extend(manifest.warnings)

    def _load(self, folder: Path) -> None:
        try:
            self.add(load_manifest(folder / MANIFEST_NAME, check_schemas=False))
        except ManifestInvalid as exc:
            self.errors.append(exc)
            name = _declared_name(folder / MANIFEST_NAME)
            if name is not None:
                self._broken[name] = (exc, folder)

    # ------------------------------------------------------------------ queries

    def plugins(self) -> list[PluginManifest]:
        return [self._plugins[name] for name in sorted(self._plugins)]

    def get(self, full_name: str) -> PluginManifest:
        """The plugin ``namespace/name``; raises UnknownTaskType with a suggestion."""
        manifest = self._plugins.get(full_name)
        if manifest is None:
            raise UnknownTaskType(f"no plugin {full_name}{_suggest(full_name, list(self._plugins))}")
        return manifest

    def resolve(self, task_type: str) -> tuple[PluginManifest, ActionSpec]:
        """The manifest and action for ``namespace/plugin.action``; raises UnknownTaskType."""
        plugin, action = split_task_type(task_type)
        manifest = self._plugins.get(plugin)
        if manifest is None and plugin in self._broken:
            exc, folder = self._broken[plugin]
            lines = str(exc).splitlines()
            detail = "; ".join(line.strip(" -") for line in lines[1:4]) or lines[0]
            raise UnknownTaskType(
                f"unknown task type {task_type!r}: the manifest of plugin {plugin} is invalid ({detail}); "
                f"see `kestra-trio plugin validate {folder}`"
            )
        if manifest is None:
            raise UnknownTaskType(
                f"unknown task type {task_type!r}: no plugin {plugin}{_suggest(plugin, list(self._plugins))}"
            )
        spec = manifest.action(action)
        if spec is None:
            names = [a.name for a in manifest.actions]
            raise UnknownTaskType(
                f"unknown task type {task_type!r}: plugin {plugin} has no action {action!r}"
                f"{_suggest(action, names)}; its actions: {', '.join(names)}"
            )
        self._check_schemas(manifest, spec)
        return manifest, spec

    def _check_schemas(self, manifest: PluginManifest, spec: ActionSpec) -> None:
        """check_schema an action's schemas on first use (discovery skips it: ~2 ms each)."""
        key = (manifest.full_name, spec.name)
        if key in self._checked:
            return
        problems = action_schema_problems(spec, list(manifest.actions).index(spec))
        if problems:  # one line, worded as `plugin validate` words it
            raise ActionSchemaInvalid(
                f"the manifest of plugin {manifest.full_name} is invalid ({'; '.join(problems)}); "
                f"see `kestra-trio plugin validate {manifest.folder}`"
            )
        self._checked.add(key)

    def check_all(self) -> None:
        """check_schema every action now, moving invalid plugins to ``errors`` (for the CLI)."""
        for manifest in self.plugins():
            try:
                for spec in manifest.actions:
                    self._check_schemas(manifest, spec)
            except ManifestInvalid as exc:
                self.errors.append(exc)
                del self._plugins[manifest.full_name]

    def known_types(self) -> list[str]:
        return sorted(t for m in self._plugins.values() for t in m.task_types())

    def input_schema(self, task_type: str) -> Mapping[str, Any] | None:
        """The action's input JSON Schema (None: no schema); LookupError when unknown."""
        return self.resolve(task_type)[1].input_schema

    def __contains__(self, task_type: object) -> bool:
        try:
            return isinstance(task_type, str) and bool(self.resolve(task_type))
        except UnknownTaskType:
            return False
