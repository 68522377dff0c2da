"""The agents shipbench knows, by name.

Invariants: adding an agent is one new module plus one entry here. `ADAPTERS` holds one prototype
per name for capability lookups; `get_adapter` returns a FRESH instance, because parsing keeps a
little per-run state on the instance (Claude's message ids, Codex's usage baseline across resumed
phases): use one instance per trial, never one shared by concurrent trials.
"""

from __future__ import annotations

from shipbench.agents.base import AgentAdapter
from shipbench.agents.claude import ClaudeAdapter
from shipbench.agents.codex import CodexAdapter
from shipbench.agents.gemini import GeminiAdapter
from shipbench.agents.opencode import OpencodeAdapter

ADAPTERS: dict[str, AgentAdapter] = {
    "opencode": OpencodeAdapter(),
    "codex": CodexAdapter(),
    "claude": ClaudeAdapter(),
    "gemini": GeminiAdapter(),
}


class UnknownAgentError(KeyError):
    """An agent name that is not in the registry; the message lists the known names."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
        self.message = f"unknown agent {name!r}; known agents: {', '.join(sorted(ADAPTERS))}"

    def __str__(self) -> str:
        return self.message


def get_adapter(name: str) -> AgentAdapter:
    """A new adapter for `name` (one per trial); UnknownAgentError lists the known names."""
    try:
        prototype = ADAPTERS[name]
    except KeyError:
        raise UnknownAgentError(name) from None
    return type(prototype)()
