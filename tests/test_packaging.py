"""A plain, non-editable install ships the bundled plugins and finds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_finds_bundled_plugins(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--target", str(target), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert (target / "kestra_trio" / "bundled_plugins" / "shell" / "plugin.yaml").is_file()
    web = target / "kestra_trio" / "server" / "web" / "static"  # the web view ships in the wheel
    for name in ("index.html", "app.css", "js/app.js", "js/logview.js", "js/api.js"):
        assert (web / name).is_file(), name
    code = (
        "import kestra_trio, sys; from kestra_trio.plugin_runtime.registry import PluginRegistry;"
        "r = PluginRegistry.discover(environ={});"
        "print(kestra_trio.__file__); print(sorted(r.known_types()))"
    )
    env = {k: v for k, v in os.environ.items() if k != "KESTRA_TRIO_PLUGIN_PATH"}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    first, types = out.stdout.splitlines()
    assert first.startswith(str(target))
    for task_type in ("core/shell.run", "core/log.message", "core/python.script", "core/http.request", "core/util.sleep"):
        assert task_type in types
