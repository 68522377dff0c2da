"""The REAL agent CLIs driven directly by the replay server (no proxy): private HOME, offline flags, stdin
closed, prompt as an argument. Each must write the trajectory's files into its workspace and exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from shipbench.replay import ReplayServer
from shipbench.replay.trajectory import HELLO_TRAJECTORY, load_trajectory

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RAILS = REPO / "src" / "shipbench" / "tasks" / "rails_chat"
AGENTS = ("opencode", "codex", "claude", "gemini")
HELLO_PROMPT = "Create a file hello.txt in the current directory containing a greeting."
EXPECTED_TOOL = {"opencode": "write", "codex": "exec_command", "claude": "Write", "gemini": "write_file"}


def find_binary(name: str) -> Path | None:
    dirs = [os.environ.get("SHIPBENCH_TOOLS_BIN"), str(REPO / ".tools" / "npm" / "bin")]
    for d in dirs:
        if d and (Path(d) / name).is_file():
            return Path(d) / name
    found = shutil.which(name)
    return Path(found) if found else None


def invocation(
    agent: str, binary: Path, url: str, home: Path, ws: Path, prompt: str
) -> tuple[list[str], dict[str, str]]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb"}
    for var, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
    ):
        env[var] = str(home / sub)
    if agent == "opencode":
        provider = {
            "npm": "@ai-sdk/openai-compatible",
            "name": "replay",
            "options": {"baseURL": url + "/v1", "apiKey": "sk-replay"},
            "models": {"replay": {"name": "replay", "tool_call": True, "limit": {"context": 200000, "output": 8192}}},
        }
        config = {
            "provider": {"replay": provider},
            "model": "replay/replay",
            "small_model": "replay/replay",
            "autoupdate": False,
            "share": "disabled",
            "permission": {"edit": "allow", "bash": "allow", "webfetch": "deny"},
        }
        (ws / "opencode.json").write_text(json.dumps(config))
        env.update(
            {
                f"OPENCODE_DISABLE_{k}": "1"
                for k in ("AUTOUPDATE", "MODELS_FETCH", "LSP_DOWNLOAD", "SHARE", "DEFAULT_PLUGINS")
            }
        )
        return [str(binary), "run", "--format", "json", "-m", "replay/replay", prompt], env
    if agent == "codex":
        codex_home = home / "codex"
        codex_home.mkdir(parents=True)
        (codex_home / "config.toml").write_text(
            'model = "replay"\nmodel_provider = "replay"\napproval_policy = "never"\n'
            'sandbox_mode = "danger-full-access"\n'
            "check_for_update_on_startup = false\n[analytics]\nenabled = false\n[model_providers.replay]\n"
            f'name = "replay"\nbase_url = "{url}/v1"\nwire_api = "responses"\nenv_key = "REPLAY_KEY"\n'
        )
        env.update(CODEX_HOME=str(codex_home), REPLAY_KEY="sk-replay")
        return [str(binary), "exec", "--json", "--skip-git-repo-check", "-C", str(ws), prompt], env
    if agent == "claude":
        env.update(
            ANTHROPIC_BASE_URL=url,
            ANTHROPIC_API_KEY="sk-ant-replay",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_AUTOUPDATER="1",
            DISABLE_TELEMETRY="1",
            DISABLE_ERROR_REPORTING="1",
            IS_SANDBOX="1",
        )
        argv = [
            str(binary),
            "-p",
            prompt,
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            "claude-sonnet-4-5",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            "Write,Bash",
        ]
        return argv, env
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    }
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env.update(GOOGLE_GEMINI_BASE_URL=url, GEMINI_API_KEY="replay")
    return [str(binary), "-p", prompt, "-o", "stream-json", "--yolo", "-m", "gemini-2.5-flash"], env


async def run_agent(agent: str, trajectory: Path, prompt: str, tmp: Path) -> tuple[int, str, ReplayServer, Path]:
    binary = find_binary(agent)
    if binary is None:
        pytest.skip(f"{agent} binary not found (SHIPBENCH_TOOLS_BIN, .tools/npm/bin, PATH)")
    home, ws = tmp / "home", tmp / "ws"
    home.mkdir()
    ws.mkdir()
    server = ReplayServer(load_trajectory(trajectory))
    url = await server.start()
    argv, env = invocation(agent, binary, url, home, ws, prompt)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ws,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        await server.stop()
    return proc.returncode or 0, out.decode(errors="replace"), server, ws


@pytest.mark.parametrize("agent", AGENTS)
def test_real_cli_writes_hello_txt(agent: str, tmp_path: Path) -> None:
    rc, out, server, ws = asyncio.run(run_agent(agent, HELLO_TRAJECTORY, HELLO_PROMPT, tmp_path))
    assert rc == 0, out[-3000:]
    assert (ws / "hello.txt").read_text() == "hello from the shipbench replay\n"
    tool_replies = [r for r in server.requests if r.get("reply", {}).get("kind") == "tool"]
    assert tool_replies and tool_replies[0]["reply"]["tool"] == EXPECTED_TOOL[agent]
    assert "Done: I created hello.txt." in out


@pytest.mark.parametrize("agent", AGENTS)
def test_real_cli_builds_the_demo_chat_app(agent: str, tmp_path: Path) -> None:
    prompt = (RAILS / "prompts" / "build.md").read_text()
    rc, out, server, ws = asyncio.run(run_agent(agent, RAILS / "replay" / "trajectory.json", prompt, tmp_path))
    assert rc == 0, out[-3000:]
    app = RAILS / "replay" / "app"
    expected = sorted(p.relative_to(app).as_posix() for p in app.rglob("*") if p.is_file())
    written = sorted(p.relative_to(ws).as_posix() for p in ws.rglob("*") if p.is_file() and p.name != "opencode.json")
    assert written == expected
    assert all((ws / rel).read_bytes() == (app / rel).read_bytes() for rel in expected)
    steps = [r["step"] for r in server.requests if r.get("phase") == 0]
    assert max(steps) == len(expected) + 1  # every write, the shell step, then the final text
