"""Adapters' headless invocations: argv, scratch env without inherited secrets, generated config files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from shipbench.agents.base import Invocation, InvocationRequest, SubagentSpec
from shipbench.agents.registry import ADAPTERS, UnknownAgentError, get_adapter

SECRET = "sk-or-v1-THIS-IS-THE-REAL-KEY-0123456789"
TOKEN = "sbt-trial-token-abc"
BASE = "http://127.0.0.1:43123/"
SUBS = (SubagentSpec(name="helper", model="openai/gpt-mini", description="Writes tests", prompt="Only tests."),)
COMMON_ENV = {"PATH", "HOME", "USER", "LANG", "TERM", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
              "XDG_STATE_HOME"}

OWN_ENV = {
    "opencode": {"OPENCODE_DISABLE_AUTOUPDATE", "OPENCODE_DISABLE_MODELS_FETCH", "OPENCODE_DISABLE_LSP_DOWNLOAD",
                 "OPENCODE_DISABLE_SHARE", "OPENCODE_DISABLE_DEFAULT_PLUGINS"},
    "codex": {"CODEX_HOME", "SHIPBENCH_PROXY_TOKEN"},
    "claude": {"ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
               "DISABLE_AUTOUPDATER", "DISABLE_TELEMETRY", "DISABLE_ERROR_REPORTING", "IS_SANDBOX"},
    "gemini": {"GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY"},
}


def request(tmp_path: Path, name: str, *, session: str | None = None, subs: bool = True) -> InvocationRequest:
    return InvocationRequest(
        binary=tmp_path / "bin" / name, workspace=tmp_path / "ws", home=tmp_path / "home",
        prompt="-Build the app. Use `rails new`.", model="anthropic/claude-sonnet-4.5", base_url=BASE, token=TOKEN,
        session_id=session, subagents=SUBS if subs else (),
    )


@pytest.fixture(autouse=True)
def harness_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENROUTER_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.setenv(var, SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://api.anthropic.com")


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_env_is_built_from_scratch_and_nothing_leaks(tmp_path: Path, name: str) -> None:
    inv = get_adapter(name).invocation(request(tmp_path, name))
    blob = json.dumps(inv.env) + "".join(inv.argv) + "".join(inv.files.values())
    assert SECRET not in blob
    assert inv.env["HOME"] == str(tmp_path / "home") and inv.env["TERM"] == "dumb"
    assert inv.env["XDG_CONFIG_HOME"] == str(tmp_path / "home" / ".config")
    assert set(inv.env) >= COMMON_ENV
    assert set(inv.env) - COMMON_ENV == OWN_ENV[name]
    assert inv.env.get("ANTHROPIC_BASE_URL") in (None, "http://127.0.0.1:43123")
    for path in inv.files:
        assert path.is_absolute() and path.is_relative_to(tmp_path / "home")  # the workspace stays the agent's
    assert TOKEN in blob  # the per-trial token is the credential the agent gets


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_prompt_is_one_argument_and_binary_first(tmp_path: Path, name: str) -> None:
    req = request(tmp_path, name)
    inv = get_adapter(name).invocation(req)
    assert inv.argv[0] == str(req.binary)
    assert sum(a.endswith(req.prompt) for a in inv.argv) == 1
    assert inv.argv[-1].endswith(req.prompt) or name == "gemini"


def _files_by_name(inv: Invocation) -> dict[str, str]:
    return {p.name: c for p, c in inv.files.items()}


def test_opencode_config_and_argv(tmp_path: Path) -> None:
    req = request(tmp_path, "opencode")
    inv = get_adapter("opencode").invocation(req)
    [path] = inv.files
    assert path == tmp_path / "home" / ".config" / "opencode" / "opencode.json"
    cfg = json.loads(inv.files[path])
    provider = cfg["provider"]["shipbench"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {"baseURL": "http://127.0.0.1:43123/v1", "apiKey": TOKEN}
    assert set(provider["models"]) == {"anthropic/claude-sonnet-4.5", "openai/gpt-mini"}
    assert provider["models"]["anthropic/claude-sonnet-4.5"]["tool_call"] is True
    assert cfg["model"] == cfg["small_model"] == "shipbench/anthropic/claude-sonnet-4.5"
    assert cfg["autoupdate"] is False and cfg["share"] == "disabled"
    assert cfg["permission"] == {"edit": "allow", "bash": "allow", "webfetch": "deny"}
    assert cfg["agent"]["helper"] == {"mode": "subagent", "model": "shipbench/openai/gpt-mini",
                                      "description": "Writes tests", "prompt": "Only tests."}
    assert inv.argv[1:] == ["run", "--format", "json", "-m", "shipbench/anthropic/claude-sonnet-4.5", "--",
                            req.prompt]
    for var in ("OPENCODE_DISABLE_AUTOUPDATE", "OPENCODE_DISABLE_MODELS_FETCH", "OPENCODE_DISABLE_LSP_DOWNLOAD",
                "OPENCODE_DISABLE_SHARE", "OPENCODE_DISABLE_DEFAULT_PLUGINS"):
        assert inv.env[var] == "1"
    cont = get_adapter("opencode").invocation(request(tmp_path, "opencode", session="ses_1"))
    assert cont.argv[-4:] == ["--session", "ses_1", "--", req.prompt]
    assert "agent" not in json.loads(next(iter(get_adapter("opencode").invocation(
        request(tmp_path, "opencode", subs=False)).files.values())))


def test_codex_config_roles_and_argv(tmp_path: Path) -> None:
    req = request(tmp_path, "codex")
    inv = get_adapter("codex").invocation(req)
    codex_home = tmp_path / "home" / ".codex"
    assert inv.env["CODEX_HOME"] == str(codex_home)
    assert inv.env["SHIPBENCH_PROXY_TOKEN"] == TOKEN
    cfg = tomllib.loads(inv.files[codex_home / "config.toml"])
    assert cfg["model"] == "anthropic/claude-sonnet-4.5" and cfg["model_provider"] == "shipbench"
    assert cfg["approval_policy"] == "never" and cfg["sandbox_mode"] == "danger-full-access"
    assert cfg["check_for_update_on_startup"] is False and cfg["analytics"] == {"enabled": False}
    assert cfg["model_providers"]["shipbench"] == {
        "name": "shipbench proxy", "base_url": "http://127.0.0.1:43123/v1", "wire_api": "responses",
        "env_key": "SHIPBENCH_PROXY_TOKEN"}
    assert TOKEN not in inv.files[codex_home / "config.toml"]  # only in the env var named by env_key
    role = tomllib.loads(inv.files[codex_home / "agents" / "helper.toml"])
    assert role == {"name": "helper", "description": "Writes tests", "model": "openai/gpt-mini",
                    "developer_instructions": "Only tests."}
    assert inv.argv[1:] == ["exec", "--json", "--skip-git-repo-check", "-C", str(req.workspace), "--", req.prompt]
    resumed = get_adapter("codex").invocation(request(tmp_path, "codex", session="thr-1"))
    assert resumed.argv[1:] == ["exec", "resume", "--json", "--skip-git-repo-check", "--", "thr-1", req.prompt]


def test_codex_toml_escapes_hostile_strings(tmp_path: Path) -> None:
    sub = SubagentSpec(name="q", model='m"\\x', description='line1\n"quoted" \\ back\ttab é')
    req = InvocationRequest(binary=Path("/b/codex"), workspace=tmp_path, home=tmp_path, prompt="p",
                            model='weird"model\n', base_url=BASE, token=TOKEN, subagents=(sub,))
    inv = get_adapter("codex").invocation(req)
    cfg = tomllib.loads(inv.files[tmp_path / ".codex" / "config.toml"])
    role = tomllib.loads(inv.files[tmp_path / ".codex" / "agents" / "q.toml"])
    assert cfg["model"] == 'weird"model\n'
    assert role["description"] == sub.description and role["model"] == sub.model


def _frontmatter(text: str) -> tuple[dict[str, str], str]:
    _, head, body = text.split("---\n", 2)
    return yaml.safe_load(head), body.strip()


def test_claude_env_argv_and_agents(tmp_path: Path) -> None:
    req = request(tmp_path, "claude")
    inv = get_adapter("claude").invocation(req)
    # the prompt is last, after `--`: a leading dash or a variadic flag cannot swallow it
    assert inv.argv[1:] == ["-p", "--output-format", "stream-json", "--verbose", "--model",
                            "anthropic/claude-sonnet-4.5", "--permission-mode", "bypassPermissions", "--", req.prompt]
    assert inv.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:43123"
    assert inv.env["ANTHROPIC_API_KEY"] == TOKEN
    for var in ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "DISABLE_AUTOUPDATER", "DISABLE_TELEMETRY",
                "DISABLE_ERROR_REPORTING", "IS_SANDBOX"):
        assert inv.env[var] == "1"
    meta, body = _frontmatter(inv.files[tmp_path / "home" / ".claude" / "agents" / "helper.md"])
    assert meta == {"name": "helper", "description": "Writes tests", "model": "openai/gpt-mini"}
    assert body == "Only tests."
    resumed = get_adapter("claude").invocation(request(tmp_path, "claude", session="sess-9"))
    assert resumed.argv[-4:] == ["--resume", "sess-9", "--", req.prompt]


def test_gemini_settings_env_argv_and_agents(tmp_path: Path) -> None:
    req = request(tmp_path, "gemini")
    inv = get_adapter("gemini").invocation(req)
    settings = json.loads(inv.files[tmp_path / "home" / ".gemini" / "settings.json"])
    assert settings["security"] == {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}}
    assert settings["privacy"] == {"usageStatisticsEnabled": False} and settings["telemetry"] == {"enabled": False}
    assert settings["general"]["enableAutoUpdate"] is False
    assert inv.env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:43123" and inv.env["GEMINI_API_KEY"] == TOKEN
    assert inv.argv[1:] == [f"--prompt={req.prompt}", "-o", "stream-json", "--yolo", "-m",
                            "anthropic/claude-sonnet-4.5"]
    meta, body = _frontmatter(inv.files[tmp_path / "home" / ".gemini" / "agents" / "helper.md"])
    assert meta == {"name": "helper", "description": "Writes tests", "kind": "local", "model": "openai/gpt-mini"}
    assert body == "Only tests."
    resumed = get_adapter("gemini").invocation(request(tmp_path, "gemini", session="uuid-1"))
    assert resumed.argv[-2:] == ["--resume", "uuid-1"]


def test_registry_names_capabilities_and_errors() -> None:
    assert sorted(ADAPTERS) == ["claude", "codex", "gemini", "opencode"]
    for name, adapter in ADAPTERS.items():
        cap = adapter.capabilities
        assert cap.name == name == cap.binary
        assert cap.delegation_tools and (cap.write_tools or cap.shell_tools)
    assert {n: a.capabilities.wire_api for n, a in ADAPTERS.items()} == {
        "opencode": "openai_chat", "codex": "openai_responses", "claude": "anthropic_messages", "gemini": "gemini"}
    assert get_adapter("codex") is not get_adapter("codex")  # per-trial instances: parse state is per run
    with pytest.raises(KeyError) as info:
        get_adapter("cursor")
    assert isinstance(info.value, UnknownAgentError)
    assert str(info.value) == "unknown agent 'cursor'; known agents: claude, codex, gemini, opencode"


def test_model_limits_reach_every_adapter_that_takes_them(tmp_path: Path) -> None:
    import dataclasses

    small = dataclasses.replace(request(tmp_path, "x", subs=False), context_window=8192)
    oc = json.loads(_files_by_name(get_adapter("opencode").invocation(small))["opencode.json"])
    [entry] = oc["provider"]["shipbench"]["models"].values()
    assert entry["limit"] == {"context": 8192, "output": 2048}  # never 16K of output into an 8K context
    codex = tomllib.loads(_files_by_name(get_adapter("codex").invocation(small))["config.toml"])
    assert codex["model_context_window"] == 8192 and codex["model_auto_compact_token_limit"] == 6963
    assert codex["model_max_output_tokens"] == 2048
    claude = get_adapter("claude").invocation(small).env
    assert claude["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "8192" and claude["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "2048"
    capped = dataclasses.replace(small, max_output_tokens=1000)
    assert get_adapter("claude").invocation(capped).env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "1000"
    default = request(tmp_path, "x", subs=False)  # nothing known: the adapters' own defaults, nothing forced
    oc = json.loads(_files_by_name(get_adapter("opencode").invocation(default))["opencode.json"])
    assert next(iter(oc["provider"]["shipbench"]["models"].values()))["limit"] == {"context": 200_000, "output": 16_384}
    codex_default = _files_by_name(get_adapter("codex").invocation(default))["config.toml"]
    assert "model_context_window" not in tomllib.loads(codex_default)
    assert "CLAUDE_CODE_MAX_OUTPUT_TOKENS" not in get_adapter("claude").invocation(default).env
