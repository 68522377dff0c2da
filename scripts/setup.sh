#!/usr/bin/env bash
# Set up shipbench on a fresh machine:
#   - .venv with the pinned Python package and dev tools;
#   - the pinned agent CLIs from npm in .tools/npm (project-local; nothing global);
#   - ripgrep (opencode's grep tool), chromium (HTML report tests) and bubblewrap (the agent sandbox) from apt
#     when missing and we are root.
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
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,cluster]'

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
fi

# System packages: ripgrep (opencode's grep tool), chromium (the HTML report's browser tests), bubblewrap
# (`bwrap`: the default agent sandbox, src/shipbench/sandbox/bwrap.py).
apt_packages=()
command -v rg >/dev/null 2>&1 || apt_packages+=(ripgrep)
[ -x /usr/bin/bwrap ] || apt_packages+=(bubblewrap)
[ -x /usr/bin/chromium ] || [ "${SHIPBENCH_SKIP_BROWSER:-0}" = "1" ] || apt_packages+=(chromium)
# Ruby, Rails 6.1, puma, minitest, webmock, simplecov and rubocop: what `shipbench validate` runs the fixture
# apps of tests/fixtures/validate with (its tests skip without them). SHIPBENCH_SKIP_RUBY=1 skips them.
if [ "${SHIPBENCH_SKIP_RUBY:-0}" != "1" ]; then
  command -v ruby >/dev/null 2>&1 && ruby -e 'require "rails"; require "puma"' >/dev/null 2>&1 && command -v rubocop >/dev/null 2>&1 \
    || apt_packages+=(ruby-rails puma ruby-minitest ruby-webmock ruby-simplecov rubocop ruby-sqlite3)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${apt_packages[*]} from apt"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${apt_packages[@]}") >/dev/null 2>&1 || echo "setup: could not install ${apt_packages[*]}" >&2
  else
    echo "setup: missing ${apt_packages[*]}: install them (as root: apt-get install ${apt_packages[*]})" >&2
  fi
fi
echo "setup: ready (.venv/bin/shipbench $(.venv/bin/shipbench version))"
