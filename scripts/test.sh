#!/usr/bin/env bash
# Set up and run the test suite on the locked dependencies: ./scripts/test.sh [options] [pytest args]
#   --quick   skip the tests marked `slow` (end-to-end runs of the real CLI): pytest -m "not slow"
#   --latest  the newest versions pyproject.toml allows, in .venv-latest/ (uv.lock is not used)
#   --lowest  the lowest versions pyproject.toml allows for our own dependencies, in .venv-lowest/
# When to run --latest and --lowest: docs/development.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
venv=.venv
resolution=
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) pytest_args+=(-m "not slow") ;;
    --latest) venv=.venv-latest resolution=highest ;;
    --lowest) venv=.venv-lowest resolution=lowest-direct ;;
    *) break ;;
    esac
    shift
done
if [ -z "$resolution" ]; then
    sync_locked_venv
else
    # a new venv each time, resolved now from pyproject.toml's ranges
    ensure_uv
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    "$UV" pip install --quiet --python "$venv/bin/python" --refresh --resolution "$resolution" -e '.[test]'
    echo "testing with: $("$UV" pip freeze --quiet --python "$venv/bin/python" --exclude-editable | tr '\n' ' ')"
fi
exec "$venv/bin/python" -m pytest -q "${pytest_args[@]}" "$@"
