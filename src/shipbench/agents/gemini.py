"""Gemini CLI adapter: `gemini -p ... -o stream-json --yolo`, Gemini generateContent via the proxy.

Invariants: settings (API-key auth, folder trust off so --yolo holds, telemetry/usage stats/auto
update off) and subagents live under the private HOME ($HOME/.gemini); user-level agents need no
per-project acknowledgement, unlike <workspace>/.gemini/agents.
Usage: Gemini CLI reports tokens only as run totals in the final `result` (stats), so usage is emitted
once, on the terminal event, and never earlier. stats.input_tokens INCLUDES cached tokens: Usage
input is stats.input (non-cached) and cache_read is stats.cached; output is stats.output_tokens
(candidates; thinking tokens are not in the stream stats). Assistant `message` lines with
delta=true are fragments of one reply: the text events must be concatenated by the reader.
"""

from __future__ import annotations

import json

from shipbench.agents.base import (
    AgentCapabilities,
    AgentEvent,
    Invocation,
    InvocationRequest,
    SubagentSpec,
    Usage,
)
from shipbench.agents.common import (
    JsonObj,
    as_dict,
    as_int,
    as_str,
    base_env,
    clip_text,
    compact_json,
    guarded_parse,
    markdown_with_frontmatter,
    parse_semver,
    proxy_root,
    usage_or_none,
)

CAPABILITIES = AgentCapabilities(
    name="gemini",
    npm_package="@google/gemini-cli",
    npm_version="0.61.0",
    binary="gemini",
    wire_api="gemini",
    continues_session=True,
    subagents=True,
    delegation_tools=frozenset({"invoke_agent"}),
    write_tools=("write_file",),
    shell_tools=("run_shell_command",),
)

SETTINGS: JsonObj = {
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
}


def agent_file(sub: SubagentSpec) -> str:
    body = sub.prompt or f"You are {sub.name}. {sub.description}"
    fields = {"name": sub.name, "description": sub.description, "kind": "local", "model": sub.model}
    return markdown_with_frontmatter(fields, body)


def stats_usage(stats: JsonObj) -> Usage:
    cached = as_int(stats.get("cached"))
    fresh = as_int(stats["input"]) if "input" in stats else max(as_int(stats.get("input_tokens")) - cached, 0)
    return Usage(input_tokens=fresh, output_tokens=as_int(stats.get("output_tokens")), cache_read_tokens=cached)


def _message(obj: JsonObj) -> list[AgentEvent]:
    if obj.get("role") != "assistant":
        return []
    text = as_str(obj.get("content"))
    return [AgentEvent(kind="text", raw_type="message", text=clip_text(text))] if text else []


def _tool_use(obj: JsonObj) -> list[AgentEvent]:
    tool = as_str(obj.get("tool_name")) or "unknown"
    return [
        AgentEvent(
            kind="tool_call",
            raw_type="tool_use",
            tool=tool,
            tool_input=compact_json(obj.get("parameters", {})),
            delegation=tool in CAPABILITIES.delegation_tools,
        )
    ]


def _tool_result(obj: JsonObj) -> list[AgentEvent]:
    failed = obj.get("status") != "success"
    detail = as_str(as_dict(obj.get("error")).get("message")) if failed else as_str(obj.get("output"))
    return [AgentEvent(kind="tool_result", raw_type="tool_result", is_error=failed, text=clip_text(detail))]


def _result(obj: JsonObj) -> list[AgentEvent]:
    failed = obj.get("status") != "success"
    usage = usage_or_none(stats_usage(as_dict(obj.get("stats"))))
    message = as_str(as_dict(obj.get("error")).get("message"))
    return [AgentEvent(kind="terminal", raw_type="result", is_error=failed, usage=usage, text=clip_text(message))]


def _parse(obj: JsonObj) -> list[AgentEvent] | None:
    kind = obj.get("type")
    if kind == "init":
        return [AgentEvent(kind="session", raw_type=kind, session_id=as_str(obj.get("session_id")),
                           model=as_str(obj.get("model")))]
    if kind == "message":
        return _message(obj)
    if kind == "tool_use":
        return _tool_use(obj)
    if kind == "tool_result":
        return _tool_result(obj)
    if kind == "error":
        severe = obj.get("severity") == "error"
        text = clip_text(as_str(obj.get("message")) or "error")
        return [AgentEvent(kind="error" if severe else "notice", raw_type=kind, text=text)]
    if kind == "result":
        return _result(obj)
    return None


class GeminiAdapter:
    capabilities = CAPABILITIES

    def invocation(self, request: InvocationRequest) -> Invocation:
        gemini_dir = request.home / ".gemini"
        files = {gemini_dir / "settings.json": json.dumps(SETTINGS, indent=2) + "\n"}
        for sub in request.subagents:
            files[gemini_dir / "agents" / f"{sub.name}.md"] = agent_file(sub)
        # --prompt=VALUE: a prompt starting with "-" stays the option's value
        argv = [str(request.binary), f"--prompt={request.prompt}", "-o", "stream-json", "--yolo", "-m", request.model]
        if request.session_id:
            argv += ["--resume", request.session_id]
        extra = {"GOOGLE_GEMINI_BASE_URL": proxy_root(request.base_url), "GEMINI_API_KEY": request.token}
        return Invocation(argv=argv, env=base_env(request, extra), files=files)

    def parse_line(self, line: str) -> list[AgentEvent]:
        return guarded_parse(line, _parse)

    def parse_version(self, output: str) -> str:
        return parse_semver(output)
