#!/usr/bin/env bash
# Set up shipbench on a fresh machine:
#   - .venv with the pinned Python package and dev tools;
#   - the pinned agent CLIs from npm in .tools/npm (project-local; nothing global);
#   - ripgrep (opencode's grep tool needs it) from apt when missing and we are root.
# Idempotent: re-running only installs what is missing. Needs python3 >= 3.11; node/npm for the agents.
# SHIPBENCH_SKIP_AGENTS=1 skips the agent CLIs (the audit needs none of them).
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

AGENTS=(opencode-ai@1.18.33 @openai/codex@0.169.0 @anthropic-ai/claude-code@2.1.330 @google/gemini-cli@0.61.0)
if [ "${SHIPBENCH_SKIP_AGENTS:-0}" != "1" ]; then
  if command -v npm >/dev/null 2>&1; then
    missing=0
    for bin in opencode codex claude gemini; do
      [ -x ".tools/npm/bin/$bin" ] || missing=1
    done
    if [ "$missing" = "1" ]; then
      echo "setup: installing agent CLIs into .tools/npm (about 1.2 GB)"
      npm install --global --prefix .tools/npm --no-fund --no-audit --loglevel=error \
        --allow-scripts=opencode-ai,@anthropic-ai/claude-code "${AGENTS[@]}"
    fi
  else
    echo "setup: npm not found: agent CLIs not installed (shipbench audit works without them)" >&2
  fi
  if ! command -v rg >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ripgrep) \
        >/dev/null 2>&1 || echo "setup: could not install ripgrep (opencode's grep tool will fail)" >&2
    else
      echo "setup: ripgrep (rg) is missing: install it for opencode's grep tool" >&2
    fi
  fi
fi
echo "setup: ready (.venv/bin/shipbench $(.venv/bin/shipbench version))"
