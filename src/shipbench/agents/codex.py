"""Codex CLI adapter: `codex exec --json`, OpenAI Responses API through a custom model provider.

Invariants: config.toml and custom agent roles live in $CODEX_HOME (under the private HOME); the
proxy token reaches codex only through the env var named by `env_key`; sessions are persisted there
(no --ephemeral) so a later phase can `codex exec resume <thread_id>`.
Usage: `turn.completed` carries the THREAD's cumulative usage (after `exec resume` it includes the
earlier runs), so each step event gets the difference to a baseline: the thread's last total, read
from codex's own rollout file at invocation time for a resume, then advanced at every turn.completed.
That state is per adapter instance (registry.get_adapter gives one per trial). Codex's input_tokens
INCLUDES cached (and cache write) input tokens: we subtract them, so Usage.input_tokens excludes
cache reads/writes like every adapter; output_tokens includes reasoning_output_tokens (OpenAI
convention), reasoning_tokens is the breakdown. One exec = one turn, so `turn.completed` is the
terminal event (`turn.failed`: failed).
Tool items are reported when completed: one item.completed gives a tool_call and its tool_result.
"""

from __future__ import annotations

import json
from pathlib import Path

from shipbench.agents.base import (
    AUTO_COMPACT_SHARE,
    AgentCapabilities,
    AgentEvent,
    Invocation,
    InvocationRequest,
    SubagentSpec,
    Usage,
    output_limit,
)
from shipbench.agents.common import (
    JsonObj,
    as_dict,
    as_int,
    as_str,
    base_env,
    clip_text,
    compact_json,
    decode_line,
    guarded_parse,
    parse_semver,
    proxy_root,
    usage_or_none,
)

PROVIDER = "shipbench"
TOKEN_ENV = "SHIPBENCH_PROXY_TOKEN"
# Warnings codex reports as `error` items although the run goes on unharmed.
_BENIGN_ERRORS = ("Model metadata for",)

CAPABILITIES = AgentCapabilities(
    name="codex",
    npm_package="@openai/codex",
    npm_version="0.169.0",
    binary="codex",
    wire_api="openai_responses",
    continues_session=True,
    subagents=True,
    delegation_tools=frozenset({"spawn_agent"}),
    write_tools=(),
    shell_tools=("exec_command", "shell"),
)


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes with ensure_ascii are a subset of TOML's)."""
    return json.dumps(value, ensure_ascii=True)


def build_config(request: InvocationRequest) -> str:
    lines = [
        f"model = {_s(request.model)}",
        f"model_provider = {_s(PROVIDER)}",
        'approval_policy = "never"',
        'sandbox_mode = "danger-full-access"',
        "check_for_update_on_startup = false",
        *_limits(request),
        "",
        "[analytics]",
        "enabled = false",
        "",
        f"[model_providers.{PROVIDER}]",
        'name = "shipbench proxy"',
        f"base_url = {_s(proxy_root(request.base_url) + '/v1')}",
        'wire_api = "responses"',
        f"env_key = {_s(TOKEN_ENV)}",
    ]
    return "\n".join(lines) + "\n"


OUTPUT_DEFAULT = 32_000  # answer cap under a known small context (kept under a quarter of it)


def _limits(request: InvocationRequest) -> list[str]:
    """The served context and answer cap, when known (codex otherwise assumes its own models' 272K)."""
    lines: list[str] = []
    if request.context_window is not None:
        lines.append(f"model_context_window = {request.context_window}")
        lines.append(f"model_auto_compact_token_limit = {int(request.context_window * AUTO_COMPACT_SHARE)}")
    cap = output_limit(request, OUTPUT_DEFAULT)
    if cap is not None:
        lines.append(f"model_max_output_tokens = {cap}")
    return lines


def agent_role(sub: SubagentSpec) -> str:
    instructions = sub.prompt or sub.description
    lines = [
        f"name = {_s(sub.name)}",
        f"description = {_s(sub.description)}",
        f"model = {_s(sub.model)}",
        f"developer_instructions = {_s(instructions)}",
    ]
    return "\n".join(lines) + "\n"


def normalise_usage(raw: JsonObj) -> Usage:
    cached = as_int(raw.get("cached_input_tokens"))
    written = as_int(raw.get("cache_write_input_tokens"))
    return Usage(
        input_tokens=max(as_int(raw.get("input_tokens")) - cached - written, 0),
        output_tokens=as_int(raw.get("output_tokens")),
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=as_int(raw.get("reasoning_output_tokens")),
    )


def minus(total: Usage, base: Usage) -> Usage:
    return Usage(
        input_tokens=max(total.input_tokens - base.input_tokens, 0),
        output_tokens=max(total.output_tokens - base.output_tokens, 0),
        cache_read_tokens=max(total.cache_read_tokens - base.cache_read_tokens, 0),
        cache_write_tokens=max(total.cache_write_tokens - base.cache_write_tokens, 0),
        reasoning_tokens=max(total.reasoning_tokens - base.reasoning_tokens, 0),
    )


def rollout_total(codex_home: Path, thread_id: str) -> Usage:
    """The thread's last cumulative usage recorded in codex's rollout file(s); zero when there is none."""
    last = Usage()
    try:
        for path in sorted((codex_home / "sessions").rglob(f"rollout-*{thread_id}.jsonl")):
            with path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if '"token_count"' not in line:
                        continue
                    info = as_dict(as_dict(as_dict(decode_line(line)).get("payload")).get("info"))
                    if "total_token_usage" in info:
                        last = normalise_usage(as_dict(info.get("total_token_usage")))
    except OSError:
        return last
    return last


def _tool_item(item: JsonObj) -> tuple[str, object, bool] | None:
    """(tool name, input, failed) for a tool-like item, None for other items."""
    kind = as_str(item.get("type")) or ""
    status = as_str(item.get("status")) or ""
    failed = status in ("failed", "declined") or item.get("error") not in (None, "", {})
    if kind == "command_execution":
        code = item.get("exit_code")
        return "command_execution", {"command": item.get("command")}, failed or (isinstance(code, int) and code != 0)
    if kind == "file_change":
        return "file_change", {"changes": item.get("changes")}, failed
    if kind == "mcp_tool_call":
        name = f"mcp:{as_str(item.get('server')) or '?'}/{as_str(item.get('tool')) or '?'}"
        return name, item.get("arguments", {}), failed
    if kind in ("collab_tool_call", "collab_agent_tool_call"):
        args = {k: item.get(k) for k in ("prompt", "receiver_thread_ids") if k in item}
        return as_str(item.get("tool")) or kind, args, failed
    if kind == "web_search":
        return "web_search", {"query": item.get("query")}, failed
    return None


def _item_completed(item: JsonObj) -> list[AgentEvent] | None:
    kind = as_str(item.get("type")) or ""
    if kind == "agent_message":
        return [AgentEvent(kind="text", raw_type="agent_message", text=clip_text(as_str(item.get("text"))))]
    if kind == "error":
        message = as_str(item.get("message")) or "error"
        benign = message.startswith(_BENIGN_ERRORS)
        return [AgentEvent(kind="notice" if benign else "error", raw_type="item.error", text=clip_text(message))]
    if kind in ("reasoning", "todo_list"):
        return []
    tool = _tool_item(item)
    if tool is None:
        return None
    name, tool_input, failed = tool
    output = as_str(item.get("aggregated_output"))
    return [
        AgentEvent(
            kind="tool_call",
            raw_type=kind,
            tool=name,
            tool_input=compact_json(tool_input),
            delegation=name in CAPABILITIES.delegation_tools,
        ),
        AgentEvent(kind="tool_result", raw_type=kind, tool=name, is_error=failed, text=clip_text(output)),
    ]


def _parse_stateless(obj: JsonObj) -> list[AgentEvent] | None:
    kind = obj.get("type")
    if kind in ("turn.started", "item.started", "item.updated"):
        return []
    if kind == "item.completed":
        return _item_completed(as_dict(obj.get("item")))
    if kind == "turn.failed":
        message = as_str(as_dict(obj.get("error")).get("message")) or "turn failed"
        return [
            AgentEvent(kind="error", raw_type=kind, text=clip_text(message)),
            AgentEvent(kind="terminal", raw_type=kind, is_error=True, text=clip_text(message)),
        ]
    if kind == "error":
        return [AgentEvent(kind="error", raw_type=kind, text=clip_text(as_str(obj.get("message")) or "error"))]
    return None


class CodexAdapter:
    capabilities = CAPABILITIES

    def __init__(self) -> None:
        self._baselines: dict[str, Usage] = {}  # thread id -> cumulative usage already accounted for
        self._thread = ""

    def invocation(self, request: InvocationRequest) -> Invocation:
        codex_home = request.home / ".codex"
        files = {codex_home / "config.toml": build_config(request)}
        for sub in request.subagents:
            files[codex_home / "agents" / f"{sub.name}.toml"] = agent_role(sub)
        common = ["--json", "--skip-git-repo-check"]
        if request.session_id:
            self._baselines[request.session_id] = rollout_total(codex_home, request.session_id)
            argv = [str(request.binary), "exec", "resume", *common, "--", request.session_id, request.prompt]
        else:
            argv = [str(request.binary), "exec", *common, "-C", str(request.workspace), "--", request.prompt]
        env = base_env(request, {"CODEX_HOME": str(codex_home), TOKEN_ENV: request.token})
        return Invocation(argv=argv, env=env, files=files)

    def parse_line(self, line: str) -> list[AgentEvent]:
        return guarded_parse(line, self._parse)

    def _parse(self, obj: JsonObj) -> list[AgentEvent] | None:
        kind = obj.get("type")
        if kind == "thread.started":
            self._thread = as_str(obj.get("thread_id")) or ""
            return [AgentEvent(kind="session", raw_type=kind, session_id=self._thread or None)]
        if kind == "turn.completed":
            total = normalise_usage(as_dict(obj.get("usage")))
            usage = minus(total, self._baselines.get(self._thread, Usage()))
            self._baselines[self._thread] = total
            return [
                AgentEvent(kind="step", raw_type=kind, usage=usage_or_none(usage)),
                AgentEvent(kind="terminal", raw_type=kind),
            ]
        return _parse_stateless(obj)

    def parse_version(self, output: str) -> str:
        return parse_semver(output)

