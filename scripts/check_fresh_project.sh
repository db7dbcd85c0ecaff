#!/usr/bin/env bash
# Issue 13's "done when", checked for real: a fresh project that ran `pip install kestra-trio[test]`
# (this checkout, built as a wheel; pip fetches the dependencies from PyPI) and holds the tests of
# examples/tests/ passes them with a plain `pytest`, using nothing from this repository but the package.
#
#   ./scripts/check_fresh_project.sh              # a temporary directory, removed afterwards
#   KEEP=1 ./scripts/check_fresh_project.sh       # keep it (its path is printed) to look around
#
# The project's pytest configuration is the two lines docs/testing.md tells users to add.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
PY="$("$PY" -c 'import sys; print(sys.executable)')" # a concrete interpreter, not a pyenv shim
work="$(mktemp -d "${TMPDIR:-/tmp}/kt-fresh-project.XXXXXX")"
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "keeping $work"; fi
began=$SECONDS

"$PY" -m venv "$work/venv"
# plain PyPI, as a user's machine has it (no local pip configuration: find-links, mirrors)
PIP_CONFIG_FILE=/dev/null "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$repo[test]"
installed=$SECONDS

mkdir "$work/project"
cp -r "$repo/examples/tests" "$work/project/tests"
find "$work/project" -name __pycache__ -prune -exec rm -rf {} +
cat > "$work/project/pyproject.toml" <<'TOML'
[tool.pytest.ini_options]
trio_mode = true
kestra_trio_plugins = ["tests/plugins"]
TOML

cd "$work/project"
env -u KESTRA_TRIO_PLUGIN_PATH -u PYTHONPATH "$work/venv/bin/python" -m pytest -q -p no:cacheprovider
echo "fresh project: venv + pip install $((installed - began))s, pytest $((SECONDS - installed))s"
