# Sourced by quickstart.sh, test.sh and lock.sh: a Python with venv, the pinned uv, the project's .venv.
#
# What gets installed is locked: uv itself by scripts/uv-requirements.txt (version + hashes, via pip), the
# project's dependencies by uv.lock (versions + hashes, via `uv sync --locked`). uv reads none of pip's
# configuration (extra indexes, find-links, constraints): a fresh machine gets the same files from PyPI.

PY="${PYTHON:-python3}"
UV=.venv-uv/bin/uv
export UV_PYTHON_DOWNLOADS=never # use the Python we were given; never download one

require_python_venv() {
    "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 && return
    # a bare Debian/Ubuntu python3 lacks venv; install it when we can (CI runs as root)
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
        echo "python3 has no venv module: install python3-venv first" >&2
        exit 2
    fi
}

# uv in its own venv (.venv-uv/), reinstalled when scripts/uv-requirements.txt pins another version
ensure_uv() {
    require_python_venv
    local pinned
    pinned="$(sed -n 's/^uv==\([^ ]*\).*/\1/p' scripts/uv-requirements.txt)"
    if [ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" != "$pinned" ]; then
        rm -rf .venv-uv
        "$PY" -m venv .venv-uv
        .venv-uv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r scripts/uv-requirements.txt
    fi
}

# .venv = exactly uv.lock (with the test extra) + kestra-trio itself, editable; fails if uv.lock is stale
sync_locked_venv() {
    ensure_uv
    [ -x .venv/bin/python ] || "$PY" -m venv .venv # a stdlib venv keeps pip, which tests/test_packaging.py uses
    if ! "$UV" sync --quiet --locked --extra test; then
        "$UV" lock --check --quiet 2>/dev/null ||
            echo "uv.lock does not match pyproject.toml: run ./scripts/lock.sh and commit uv.lock" >&2
        exit 1
    fi
}
