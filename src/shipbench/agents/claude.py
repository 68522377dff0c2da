"""Claude Code adapter: `claude -p ... --output-format stream-json --verbose`, Anthropic Messages via the proxy.

Invariants: the prompt is the last argument, after `--` (so neither a leading dash nor a variadic
flag can swallow it); subagents are user-level agent
files in $HOME/.claude/agents (the private HOME, so the workspace holds only what the agent built).
Usage: Claude Code prints one `assistant` line per content block, each repeating its message's usage,
and that usage is the message_start snapshot (output_tokens not final). So: each message id's usage
is emitted once (a `step` event on its first line), and the final `result` carries only the
remainder: the invocation's totals (`model_usage_since_last_result` summed over models, else `usage`;
never `modelUsage`, which is cumulative across --resume) minus what was already emitted, per field,
never below 0. Summing every usage event of a run thus gives the invocation's totals; a run that
dies before `result` still sums its per-message usage.
The per-session bookkeeping is keyed by session_id, so one adapter instance serves concurrent trials.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from shipbench.agents.base import (
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
    as_list,
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

MAX_SESSIONS = 256

CAPABILITIES = AgentCapabilities(
    name="claude",
    npm_package="@anthropic-ai/claude-code",
    npm_version="2.1.330",
    binary="claude",
    wire_api="anthropic_messages",
    continues_session=True,
    subagents=True,
    delegation_tools=frozenset({"Task", "Agent"}),
    write_tools=("Write",),
    shell_tools=("Bash",),
    install_scripts=True,
)

_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "IS_SANDBOX": "1",
}


def agent_file(sub: SubagentSpec) -> str:
    body = sub.prompt or f"You are {sub.name}. {sub.description}"
    return markdown_with_frontmatter({"name": sub.name, "description": sub.description, "model": sub.model}, body)


def message_usage(raw: JsonObj) -> Usage:
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")),
        output_tokens=as_int(raw.get("output_tokens")),
        cache_read_tokens=as_int(raw.get("cache_read_input_tokens")),
        cache_write_tokens=as_int(raw.get("cache_creation_input_tokens")),
    )


def _model_usage_total(per_model: list[JsonObj]) -> Usage:
    total = Usage()
    for m in per_model:
        total = total + Usage(
            input_tokens=as_int(m.get("inputTokens")),
            output_tokens=as_int(m.get("outputTokens")),
            cache_read_tokens=as_int(m.get("cacheReadInputTokens")),
            cache_write_tokens=as_int(m.get("cacheCreationInputTokens")),
            reasoning_tokens=as_int(m.get("thinkingTokens")),
        )
    return total


def result_totals(obj: JsonObj) -> Usage:
    """This invocation's totals: `model_usage_since_last_result` summed over models (subagents' included),
    else `usage`. Never `modelUsage`: after --resume it is cumulative over the whole session."""
    since_last = as_dict(obj.get("model_usage_since_last_result"))
    if since_last:
        return _model_usage_total([as_dict(v) for v in since_last.values()])
    usage = as_dict(obj.get("usage"))
    thinking = as_int(as_dict(usage.get("output_tokens_details")).get("thinking_tokens"))
    return message_usage(usage) + Usage(reasoning_tokens=thinking)


def remainder(total: Usage, emitted: Usage) -> Usage:
    return Usage(
        input_tokens=max(total.input_tokens - emitted.input_tokens, 0),
        output_tokens=max(total.output_tokens - emitted.output_tokens, 0),
        cache_read_tokens=max(total.cache_read_tokens - emitted.cache_read_tokens, 0),
        cache_write_tokens=max(total.cache_write_tokens - emitted.cache_write_tokens, 0),
        reasoning_tokens=max(total.reasoning_tokens - emitted.reasoning_tokens, 0),
    )


@dataclass
class _Session:
    seen: set[str] = field(default_factory=set)
    emitted: Usage = field(default_factory=Usage)


OUTPUT_DEFAULT = 32_000  # answer cap under a known small context (kept under a quarter of it)


def _limits(request: InvocationRequest) -> dict[str, str]:
    """Claude Code reads its compaction window and answer cap from the environment."""
    env: dict[str, str] = {}
    if request.context_window is not None:
        env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] = str(request.context_window)
    cap = output_limit(request, OUTPUT_DEFAULT)
    if cap is not None:
        env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(cap)
    return env


class ClaudeAdapter:
    capabilities = CAPABILITIES

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def invocation(self, request: InvocationRequest) -> Invocation:
        argv = [str(request.binary), "-p", "--output-format", "stream-json", "--verbose"]
        argv += ["--model", request.model, "--permission-mode", "bypassPermissions"]
        if request.session_id:
            argv += ["--resume", request.session_id]
        argv += ["--", request.prompt]  # after `--`: never read as an option nor as a variadic flag's value
        extra = {"ANTHROPIC_BASE_URL": proxy_root(request.base_url), "ANTHROPIC_API_KEY": request.token, **_ENV,
                 **_limits(request)}
        files = {request.home / ".claude" / "agents" / f"{s.name}.md": agent_file(s) for s in request.subagents}
        return Invocation(argv=argv, env=base_env(request, extra), files=files)

    def parse_line(self, line: str) -> list[AgentEvent]:
        return guarded_parse(line, self._parse)

    def parse_version(self, output: str) -> str:
        return parse_semver(output)

    def _session(self, sid: str) -> _Session:
        state = self._sessions.get(sid)
        if state is None:
            state = self._sessions[sid] = _Session()
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return state

    def _parse(self, obj: JsonObj) -> list[AgentEvent] | None:
        kind = obj.get("type")
        sid = as_str(obj.get("session_id"))
        if kind == "system":
            return _system(obj, sid)
        if kind == "assistant":
            return self._assistant(obj, sid)
        if kind == "user":
            return _user(obj, sid)
        if kind == "result":
            return [self._result(obj, sid)]
        return None

    def _assistant(self, obj: JsonObj, sid: str | None) -> list[AgentEvent]:
        message = as_dict(obj.get("message"))
        model = as_str(message.get("model"))
        events: list[AgentEvent] = []
        for block in as_list(message.get("content")):
            events.extend(_content_block(as_dict(block), sid, model))
        mid = as_str(message.get("id"))
        state = self._session(sid or "")
        if mid and mid not in state.seen and "usage" in message:
            state.seen.add(mid)
            usage = message_usage(as_dict(message.get("usage")))
            state.emitted = state.emitted + usage
            events.append(AgentEvent(kind="step", raw_type="assistant", session_id=sid, model=model, usage=usage))
        return events

    def _result(self, obj: JsonObj, sid: str | None) -> AgentEvent:
        state = self._sessions.pop(sid or "", _Session())
        usage = usage_or_none(remainder(result_totals(obj), state.emitted))
        subtype = as_str(obj.get("subtype")) or ""
        failed = obj.get("is_error") is True or (subtype != "" and subtype != "success")
        text = as_str(obj.get("result")) or subtype
        return AgentEvent(kind="terminal", raw_type="result", session_id=sid, is_error=failed, usage=usage,
                          text=clip_text(text))


def _system(obj: JsonObj, sid: str | None) -> list[AgentEvent]:
    subtype = as_str(obj.get("subtype")) or ""
    if subtype == "init":
        return [AgentEvent(kind="session", raw_type="system/init", session_id=sid, model=as_str(obj.get("model")))]
    detail = as_str(obj.get("error")) or as_str(obj.get("message")) or subtype
    return [AgentEvent(kind="notice", raw_type=f"system/{subtype}", session_id=sid, text=clip_text(detail))]


def _content_block(block: JsonObj, sid: str | None, model: str | None) -> list[AgentEvent]:
    btype = block.get("type")
    if btype == "text":
        text = as_str(block.get("text"))
        return [AgentEvent(kind="text", raw_type="assistant", session_id=sid, model=model, text=clip_text(text))]
    if btype == "tool_use":
        tool = as_str(block.get("name")) or "unknown"
        return [
            AgentEvent(
                kind="tool_call",
                raw_type="assistant",
                session_id=sid,
                model=model,
                tool=tool,
                tool_input=compact_json(block.get("input", {})),
                delegation=tool in CAPABILITIES.delegation_tools,
            )
        ]
    return []


def _user(obj: JsonObj, sid: str | None) -> list[AgentEvent]:
    events: list[AgentEvent] = []
    for block in as_list(as_dict(obj.get("message")).get("content")):
        b = as_dict(block)
        if b.get("type") != "tool_result":
            continue
        content = b.get("content")
        text = content if isinstance(content, str) else compact_json(content, 4096)
        events.append(
            AgentEvent(kind="tool_result", raw_type="user", session_id=sid, is_error=b.get("is_error") is True,
                       text=clip_text(text))
        )
    return events
