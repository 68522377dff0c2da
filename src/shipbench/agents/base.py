"""The one shape every agent adapter has: typed capabilities, a headless invocation, a stream parser.

Invariants: an adapter never starts processes itself (the runner does) and never sees the real
provider key (it is given the per-trial proxy token); `parse_line` never raises: a line it cannot
understand becomes an `AgentEvent(kind="unparsed")`; usage numbers in events are per event (never
cumulative), so summing every usage event of a phase gives the phase total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

WireApi = Literal["openai_chat", "openai_responses", "anthropic_messages", "gemini"]
EventKind = Literal[
    "session",  # session/thread started (session_id)
    "step",  # a model turn finished (usage usually attached)
    "tool_call",  # the agent invoked a tool (tool, tool_input)
    "tool_result",  # a tool finished (is_error)
    "text",  # assistant text (text)
    "usage",  # usage without a step boundary
    "error",  # an error the agent reported (text)
    "terminal",  # the run finished (is_error tells success or failure)
    "unparsed",  # a line that is not a known event
    "notice",  # a known non-fatal warning/info line (retry notice, CLI warning): activity, not an error
]


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens


class AgentEvent(BaseModel):
    """One normalised event from an agent's JSON stream."""

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    raw_type: str = ""
    session_id: str | None = None
    tool: str | None = None
    tool_input: str | None = Field(default=None, description="compact JSON of the tool input, clipped")
    text: str | None = None
    usage: Usage | None = None
    is_error: bool = False
    delegation: bool = Field(default=False, description="the tool call hands work to a subagent")
    model: str | None = None


@dataclass(frozen=True)
class AgentCapabilities:
    """What an agent CLI is and can do, as data (the runner and the replay upstream read this)."""

    name: str
    npm_package: str
    npm_version: str
    binary: str
    wire_api: WireApi
    continues_session: bool  # can a later phase resume the previous phase's session
    subagents: bool  # supports declaring subagent models
    delegation_tools: frozenset[str]  # tool names that delegate to a subagent
    write_tools: tuple[str, ...]  # tool names (in preference order) the replay upstream may call to write files
    shell_tools: tuple[str, ...]  # tool names that run a shell command
    version_args: tuple[str, ...] = ("--version",)
    install_scripts: bool = False  # npm package needs its postinstall script


@dataclass(frozen=True)
class SubagentSpec:
    name: str
    model: str
    description: str
    prompt: str = ""


@dataclass(frozen=True)
class Invocation:
    """Everything needed to start one phase of one agent, headless."""

    argv: list[str]
    env: dict[str, str]
    files: dict[Path, str] = field(default_factory=dict)  # absolute path -> content, written before start


@dataclass(frozen=True)
class InvocationRequest:
    """What the runner knows when it asks an adapter for an invocation."""

    binary: Path
    workspace: Path
    home: Path  # private HOME for this trial (XDG_* and CODEX_HOME live under it)
    prompt: str
    model: str  # model id as the agent should request it
    base_url: str  # proxy root, e.g. http://127.0.0.1:43123 (adapters add /v1 etc.)
    token: str  # per-trial proxy token; the only credential the agent ever sees
    session_id: str | None = None  # continue this session (later phases), when supported
    subagents: tuple[SubagentSpec, ...] = ()
    context_window: int | None = None  # tokens the model is served with (the agent compacts before it); None: default
    max_output_tokens: int | None = None  # tokens per answer the agent may ask for; None: the adapter's default


def output_limit(request: InvocationRequest, default: int) -> int | None:
    """The answer cap to configure: the model's, else `default` kept under a quarter of a known context (a small
    local context must not be asked for more output than it can hold); None when neither is known."""
    if request.max_output_tokens is not None:
        return request.max_output_tokens
    if request.context_window is not None:
        return max(256, min(default, request.context_window // 4))
    return None


AUTO_COMPACT_SHARE = 0.85  # agents that take a compaction threshold compact at this share of the context


class AgentAdapter(Protocol):
    capabilities: AgentCapabilities

    def invocation(self, request: InvocationRequest) -> Invocation: ...

    def parse_line(self, line: str) -> list[AgentEvent]: ...

    def parse_version(self, output: str) -> str: ...
