"""The harness side of tests/test_sandbox.py: start the probe exactly as the runner starts an agent.

Run as `python sandbox_harness.py CONFIG_JSON KEY` with the fake provider key also in this process's own
environment, where a real harness holds the real one. The probe goes through the codex adapter's invocation
(its env, argv and HOME files) and runner/process.run_process with the chosen sandbox's wrap (and network mode,
with a real MeteringProxy on TCP and a Unix socket, its URL written to the workspace's `proxy_url`); prints one JSON.
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
from shipbench.proxy.server import MeteringProxy
from shipbench.runner.process import StopSignal, run_process
from shipbench.sandbox.base import ProxyEndpoint, SandboxRequest
from shipbench.sandbox.registry import resolve_sandbox


async def run(config: dict[str, str]) -> dict[str, object]:
    proxy = MeteringProxy()
    proxy_url = await proxy.start(unix_socket=True)
    try:
        return await _run(config, proxy, proxy_url)
    finally:
        await proxy.stop()


async def _run(config: dict[str, str], proxy: MeteringProxy, proxy_url: str) -> dict[str, object]:
    network = config.get("network", "open")
    sandbox = resolve_sandbox(SandboxConfig(backend=config["backend"], network=network))  # type: ignore[arg-type]
    workspace, home, probe = Path(config["workspace"]), Path(config["home"]), Path(config["probe"])
    (workspace / "proxy_url").write_text(proxy_url, encoding="utf-8")
    request = InvocationRequest(
        binary=probe,
        workspace=workspace,
        home=home,
        prompt="probe",
        model="m",
        base_url=proxy_url,
        token=config["token"],
    )
    invocation = get_adapter("codex").invocation(request)
    assert proxy.unix_path is not None
    endpoint = ProxyEndpoint(socket=proxy.unix_path, port=int(proxy_url.rsplit(":", 1)[1]))
    where = SandboxRequest(
        workspace=workspace,
        home=home,
        binary=probe,
        path_env=invocation.env["PATH"],
        network=network,
        proxy=endpoint,  # type: ignore[arg-type]
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
