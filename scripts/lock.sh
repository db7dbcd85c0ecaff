#!/usr/bin/env bash
# Update uv.lock, the versions (with hashes) that test.sh and quickstart.sh install: ./scripts/lock.sh [uv lock args]
#   ./scripts/lock.sh                            after editing dependencies in pyproject.toml
#   ./scripts/lock.sh --upgrade                  every package to the newest version pyproject.toml allows
#   ./scripts/lock.sh --upgrade-package pyyaml   one package
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
ensure_uv
exec "$UV" lock --python "$PY" "$@"
