#!/usr/bin/env bash
# Set up shipbench on a fresh machine: a virtualenv in .venv with the pinned package and dev tools.
# Idempotent: re-running only installs what changed. Needs python3 (>= 3.11) with venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "setup: $PYTHON is older than 3.11; set PYTHON=/path/to/python3.11+" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
echo "setup: ready (.venv/bin/shipbench $(.venv/bin/shipbench version))"
