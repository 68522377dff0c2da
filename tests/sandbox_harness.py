"""The harness side of tests/test_sandbox.py: start the probe exactly as the runner starts an agent.

Run as `python sandbox_harness.py CONFIG_JSON KEY` with the fake provider key also in this process's own
environment, where a real harness holds the real one. The probe goes through the codex adapter's invocation
(its env, argv and HOME files) and runner/process.run_process with the chosen sandbox's wrap; prints one JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from shipbench.agents.base import InvocationRequest
from shipbench.agents.registry import get_adapter
from shipbench.config import Limits, SandboxConfig
from shipbench.runner.process import StopSignal, run_process
from shipbench.sandbox.base import SandboxRequest
from shipbench.sandbox.registry import resolve_sandbox


async def run(config: dict[str, str]) -> dict[str, object]:
    sandbox = resolve_sandbox(SandboxConfig(backend=config["backend"]))  # type: ignore[arg-type]
    workspace, home, probe = Path(config["workspace"]), Path(config["home"]), Path(config["probe"])
    request = InvocationRequest(
        binary=probe,
        workspace=workspace,
        home=home,
        prompt="probe",
        model="m",
        base_url="http://127.0.0.1:9",
        token=config["token"],
    )
    invocation = get_adapter("codex").invocation(request)
    where = SandboxRequest(
        workspace=workspace, home=home, binary=probe, path_env=invocation.env["PATH"], network="open"
    )
    lines: list[str] = []
    result = await run_process(
        invocation,
        cwd=workspace,
        marker=config["marker"],
        limits=Limits(grace_s=1),
        on_stdout_line=lines.append,
        stderr_path=Path(config["stderr"]),
        stop=StopSignal(),
        wrap=lambda argv: sandbox.sandbox.wrap(argv, where),
    )
    return {
        "harness_pid": os.getpid(),
        "exit_code": result.exit_code,
        "lines": lines,
        "sandbox": sandbox.record.model_dump(mode="json"),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.loads(sys.argv[1])))), flush=True)
