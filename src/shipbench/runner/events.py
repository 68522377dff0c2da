"""Per-phase bookkeeping of an agent's stream: redaction of raw lines and a summary of parsed events.

Invariants: a raw line is redacted (every secret replaced by a fixed placeholder) before it reaches
disk; the summary's usage is the SUM of every event's usage (events carry per-event usage, never
cumulative); the terminal event kept is the last one seen; consecutive text events form one
reply (the final message), a terminal event's text is used only when no reply text was seen.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from shipbench.agents.base import AgentEvent, Usage

REDACTED = "[REDACTED]"
_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


@dataclass
class Redactor:
    secrets: list[str] = field(default_factory=list)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4 and secret not in self.secrets:
            self.secrets.append(secret)
            self.secrets.sort(key=len, reverse=True)  # longest first: a secret containing another one

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


MAX_TOOL_INPUTS = 20_000  # bounds memory on an agent that floods tool calls


@dataclass
class StreamSummary:
    usage: Usage = field(default_factory=Usage)
    tool_calls: Counter[str] = field(default_factory=Counter)
    delegations: int = 0
    last_tool: str | None = None
    final_message: str = ""
    session_id: str | None = None
    terminal: AgentEvent | None = None
    error_events: int = 0
    events: int = 0
    unparsed: int = 0
    tool_inputs: list[str] = field(default_factory=list)  # clipped inputs, at most MAX_TOOL_INPUTS kept
    _last_kind: str = ""

    def add(self, event: AgentEvent) -> None:
        self.events += 1
        if event.usage is not None:
            self.usage = self.usage + event.usage
        if event.session_id and not self.session_id:
            self.session_id = event.session_id
        if event.kind == "tool_call" and event.tool:
            self.tool_calls[event.tool] += 1
            if event.tool_input and len(self.tool_inputs) < MAX_TOOL_INPUTS:
                self.tool_inputs.append(event.tool_input)
            self.last_tool = event.tool
            if event.delegation:
                self.delegations += 1
        elif event.kind == "text" and event.text:
            # consecutive text events are fragments of one reply (Gemini streams deltas); else a new reply
            self.final_message = (self.final_message if self._last_kind == "text" else "") + event.text
        elif event.kind == "error" or (event.kind == "tool_result" and event.is_error):
            self.error_events += 1
        elif event.kind == "terminal":
            self.terminal = event
            if event.text and not self.final_message:
                self.final_message = event.text
        elif event.kind == "unparsed":
            self.unparsed += 1
        if event.kind != "unparsed":
            self._last_kind = event.kind


def usage_disagreement(proxy: Usage, stream: Usage) -> str | None:
    """None when the agent's own stream reported the same usage as the proxy metered, else what differs."""
    diffs = [
        f"{name}: proxy {getattr(proxy, name)} vs stream {getattr(stream, name)}"
        for name in _FIELDS
        if getattr(proxy, name) != getattr(stream, name)
    ]
    return "; ".join(diffs) or None
