"""opencode (opencode-ai) adapter: `opencode run --format json`, OpenAI chat completions via a custom provider.

Invariants: the config lives in $XDG_CONFIG_HOME/opencode/opencode.json under the private HOME, never in
the workspace (the workspace holds only what the agent built and never the proxy token); every model,
subagents' included, is served by the single provider "shipbench" pointing at the proxy.
Usage: one `step_finish` = one model step, its tokens are per step. opencode reports input WITHOUT
cache reads/writes and output WITHOUT reasoning; we add reasoning back so Usage.output_tokens is the
upstream's output count (reasoning included, reasoning_tokens the breakdown). opencode prints no
end-of-run event: a `step_finish` whose reason is not "tool-calls" is the terminal event; a session
`error` event is an error followed by a failed terminal. Only the main session's parts are printed,
so subagent steps are not in the stream (the proxy still meters them).
"""

from __future__ import annotations

import json

from shipbench.agents.base import (
    AgentCapabilities,
    AgentEvent,
    Invocation,
    InvocationRequest,
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
    guarded_parse,
    parse_semver,
    proxy_root,
    usage_or_none,
)

PROVIDER = "shipbench"
CONTEXT_LIMIT = 200_000
OUTPUT_LIMIT = 16_384
_CONTINUE_REASONS = frozenset({"tool-calls", "tool_calls", "unknown"})

CAPABILITIES = AgentCapabilities(
    name="opencode",
    npm_package="opencode-ai",
    npm_version="1.18.33",
    binary="opencode",
    wire_api="openai_chat",
    continues_session=True,
    subagents=True,
    delegation_tools=frozenset({"task"}),
    write_tools=("write",),
    shell_tools=("bash",),
    install_scripts=True,
)

_ENV = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
}


def _model_entry(model: str, limit: JsonObj) -> JsonObj:
    return {"name": model, "tool_call": True, "limit": limit}


def model_limit(request: InvocationRequest) -> JsonObj:
    """opencode's per-model limits: it compacts before `context` and asks for at most `output` per answer."""
    output = output_limit(request, OUTPUT_LIMIT) or OUTPUT_LIMIT
    return {"context": request.context_window or CONTEXT_LIMIT, "output": output}


def build_config(request: InvocationRequest) -> JsonObj:
    limit = model_limit(request)
    models = {request.model: _model_entry(request.model, limit)}
    agents: JsonObj = {}
    for sub in request.subagents:
        models.setdefault(sub.model, _model_entry(sub.model, limit))
        agent: JsonObj = {"mode": "subagent", "model": f"{PROVIDER}/{sub.model}", "description": sub.description}
        if sub.prompt:
            agent["prompt"] = sub.prompt
        agents[sub.name] = agent
    config: JsonObj = {
        "provider": {
            PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "shipbench proxy",
                "options": {"baseURL": proxy_root(request.base_url) + "/v1", "apiKey": request.token},
                "models": models,
            }
        },
        "model": f"{PROVIDER}/{request.model}",
        "small_model": f"{PROVIDER}/{request.model}",
        "autoupdate": False,
        "share": "disabled",
        "permission": {"edit": "allow", "bash": "allow", "webfetch": "deny"},
    }
    if agents:
        config["agent"] = agents
    return config


def _usage(part: JsonObj) -> Usage:
    tokens = as_dict(part.get("tokens"))
    cache = as_dict(tokens.get("cache"))
    reasoning = as_int(tokens.get("reasoning"))
    return Usage(
        input_tokens=as_int(tokens.get("input")),
        output_tokens=as_int(tokens.get("output")) + reasoning,
        cache_read_tokens=as_int(cache.get("read")),
        cache_write_tokens=as_int(cache.get("write")),
        reasoning_tokens=reasoning,
    )


def _tool_use(part: JsonObj, sid: str | None) -> list[AgentEvent]:
    tool = as_str(part.get("tool")) or "unknown"
    state = as_dict(part.get("state"))
    status = as_str(state.get("status")) or ""
    call = AgentEvent(
        kind="tool_call",
        raw_type="tool_use",
        session_id=sid,
        tool=tool,
        tool_input=compact_json(state.get("input", {})),
        delegation=tool in CAPABILITIES.delegation_tools,
    )
    failed = status == "error"
    output = as_str(state.get("error")) if failed else as_str(state.get("output"))
    result = AgentEvent(
        kind="tool_result", raw_type="tool_use", session_id=sid, tool=tool, is_error=failed, text=clip_text(output)
    )
    return [call, result] if status in ("completed", "error") else [call]


def _step_finish(part: JsonObj, sid: str | None) -> list[AgentEvent]:
    reason = as_str(part.get("reason")) or ""
    events = [AgentEvent(kind="step", raw_type="step_finish", session_id=sid, usage=usage_or_none(_usage(part)))]
    if reason not in _CONTINUE_REASONS:
        failed = reason in ("error", "content-filter")
        text = f"step finished: {reason}" if failed else None  # a clean stop leaves the final text alone
        events.append(AgentEvent(kind="terminal", raw_type="step_finish", session_id=sid, is_error=failed, text=text))
    return events


def _error(obj: JsonObj, sid: str | None) -> list[AgentEvent]:
    err = as_dict(obj.get("error"))
    message = as_str(as_dict(err.get("data")).get("message")) or as_str(err.get("name")) or "error"
    return [
        AgentEvent(kind="error", raw_type="error", session_id=sid, text=clip_text(message)),
        AgentEvent(kind="terminal", raw_type="error", session_id=sid, is_error=True, text=clip_text(message)),
    ]


def _parse(obj: JsonObj) -> list[AgentEvent] | None:
    kind = obj.get("type")
    part = as_dict(obj.get("part"))
    sid = as_str(obj.get("sessionID")) or as_str(part.get("sessionID"))
    if kind == "step_start":
        return [AgentEvent(kind="session", raw_type="step_start", session_id=sid)] if sid else []
    if kind == "tool_use":
        return _tool_use(part, sid)
    if kind == "step_finish":
        return _step_finish(part, sid)
    if kind in ("text", "reasoning"):
        text = as_str(part.get("text"))
        return [AgentEvent(kind="text", raw_type=kind, session_id=sid, text=clip_text(text))] if text else []
    if kind == "error":
        return _error(obj, sid)
    return None


class OpencodeAdapter:
    capabilities = CAPABILITIES

    def invocation(self, request: InvocationRequest) -> Invocation:
        config_path = request.home / ".config" / "opencode" / "opencode.json"
        argv = [str(request.binary), "run", "--format", "json", "-m", f"{PROVIDER}/{request.model}"]
        if request.session_id:
            argv += ["--session", request.session_id]
        argv += ["--", request.prompt]
        files = {config_path: json.dumps(build_config(request), indent=2) + "\n"}
        return Invocation(argv=argv, env=base_env(request, _ENV), files=files)

    def parse_line(self, line: str) -> list[AgentEvent]:
        return guarded_parse(line, _parse)

    def parse_version(self, output: str) -> str:
        return parse_semver(output)
