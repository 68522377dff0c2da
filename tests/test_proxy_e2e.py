"""The real agent CLIs through the metering proxy to the replay upstream: exact usage, no key leaked.

Slow: runs the real binaries (found via SHIPBENCH_TOOLS_BIN, <repo>/.tools/npm/bin, then PATH; skipped
when absent). Configs here are minimal inline ones (NOTES.md §2), not the agent adapters' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from shipbench.config import Budget, Pricing
from shipbench.proxy import MeteringProxy, UpstreamTarget
from shipbench.store.records import LlmCallRecord

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-e2e-REAL-KEY-4c1d9e-never-in-trial-dir"
PROMPT = "Create a file hello.txt containing a greeting."
KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def find_binary(name: str) -> str | None:
    for folder in (os.environ.get("SHIPBENCH_TOOLS_BIN"), str(REPO / ".tools" / "npm" / "bin")):
        if folder and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    return shutil.which(name)


def invocation(agent: str, binary: str, ws: Path, home: Path, base: str,
               token: str) -> tuple[list[str], dict[str, str]]:
    env = {"PATH": f"{Path(binary).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
           "XDG_CONFIG_HOME": f"{home}/.config", "XDG_DATA_HOME": f"{home}/.local/share",
           "XDG_CACHE_HOME": f"{home}/.cache", "XDG_STATE_HOME": f"{home}/.local/state"}
    if agent == "opencode":
        model = {"name": "m", "tool_call": True, "limit": {"context": 100000, "output": 4096}}
        (ws / "opencode.json").write_text(json.dumps({
            "provider": {"sb": {"npm": "@ai-sdk/openai-compatible", "name": "sb",
                                "options": {"baseURL": base + "/v1", "apiKey": token}, "models": {"m": model}}},
            "model": "sb/m", "small_model": "sb/m", "autoupdate": False, "share": "disabled",
            "permission": {"edit": "allow", "bash": "allow", "webfetch": "deny"}}))
        env.update({k: "1" for k in ("OPENCODE_DISABLE_AUTOUPDATE", "OPENCODE_DISABLE_MODELS_FETCH",
                                     "OPENCODE_DISABLE_LSP_DOWNLOAD", "OPENCODE_DISABLE_SHARE",
                                     "OPENCODE_DISABLE_DEFAULT_PLUGINS")})
        return [binary, "run", "--format", "json", "-m", "sb/m", PROMPT], env
    if agent == "codex":
        env.update(SB_TOKEN=token, CODEX_HOME=str(home / ".codex"))
        (home / ".codex").mkdir()
        prov = f'model_providers.sb={{name="sb",base_url="{base}/v1",wire_api="responses",env_key="SB_TOKEN"}}'
        return [binary, "exec", "--json", "--skip-git-repo-check", "-m", "gpt-5-codex", "-c", "model_provider=sb",
                "-c", prov, "--dangerously-bypass-approvals-and-sandbox", PROMPT], env
    if agent == "claude":
        env.update(ANTHROPIC_BASE_URL=base, ANTHROPIC_API_KEY=token, IS_SANDBOX="1",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1", DISABLE_TELEMETRY="1",
                   DISABLE_ERROR_REPORTING="1")
        return [binary, "-p", PROMPT, "--output-format", "stream-json", "--verbose", "--model", "claude-sonnet-4-5",
                "--permission-mode", "acceptEdits", "--allowedTools", "Write,Bash"], env
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
        "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True}}))
    env.update(GOOGLE_GEMINI_BASE_URL=base, GEMINI_API_KEY=token)
    return [binary, "-p", PROMPT, "-o", "stream-json", "--yolo", "-m", "gemini-2.5-flash"], env


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["claude", "codex", "gemini", "opencode"])
def test_real_cli_through_proxy_exact_usage(tmp_path: Path, agent: str) -> None:
    binary = find_binary(agent)
    if binary is None:
        pytest.skip(f"{agent} binary not found (SHIPBENCH_TOOLS_BIN, .tools/npm/bin, PATH)")
    replay_server = pytest.importorskip("shipbench.replay.server")
    trajectory = pytest.importorskip("shipbench.replay.trajectory")

    async def body() -> None:
        replay = replay_server.ReplayServer(trajectory.load_trajectory(REPO / "src/shipbench/replay/hello.json"))
        proxy = MeteringProxy()
        ws, home = tmp_path / "workspace", tmp_path / "home"
        ws.mkdir()
        home.mkdir()
        calls = tmp_path / "phases" / "1" / "llm_calls.jsonl"
        try:
            target = UpstreamTarget("replay", await replay.start(), SECRET, extra_headers={
                "X-Shipbench-Workspace": str(ws)}, pricing=Pricing(input_per_mtok=1, output_per_mtok=5))
            lease = proxy.open_lease(trial_id=agent, phase=1, upstream=target, budget=Budget(), calls_path=calls)
            argv, env = invocation(agent, binary, ws, home, await proxy.start(), lease.token)
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=ws, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 120)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # nothing the agent started outlives the test
            (tmp_path / "events.jsonl").write_bytes(out)
            assert proc.returncode == 0, err.decode()[-2000:]
            assert (ws / "hello.txt").is_file()
            records = [LlmCallRecord.model_validate_json(x) for x in calls.read_text().splitlines()]
            reported = [r["usage"] for r in replay.requests if "usage" in r]
            assert len(records) == len(reported) >= 2
            mine = sorted(json.dumps(r.usage.model_dump(include=set(KEYS)), sort_keys=True) for r in records)
            theirs = sorted(json.dumps({k: u.get(k, 0) for k in KEYS}, sort_keys=True) for u in reported)
            assert mine == theirs  # exactly what the upstream reported, call by call
            assert all(r.status == 200 and r.cost_usd is not None and r.cost_usd > 0 for r in records)
            assert lease.usage.total == sum(r.usage.total for r in records) > 0
        finally:
            await proxy.stop()
            await replay.stop()
        for path in tmp_path.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert SECRET.encode() not in path.read_bytes(), path

    asyncio.run(body())
