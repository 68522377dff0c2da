"""Which failures of a chat turn escape the rescues the app built around its LLM calls.

Invariants: Ruby's rule decides: a rescue catches an exception when it is bare or names the class or
one of its ancestors. Two failures of ruby_llm are not `RubyLLM::Error`s (error.rb of 1.14.1 and 1.16.0,
checked by tests against the real sources): a missing key raises `RubyLLM::ConfigurationError <
StandardError` when the chat is built (the provider checks its configuration), and a network failure
re-raises Faraday's own error after the gem's retries. A key preflight in the app makes the first moot.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource
from shipbench.tasks.rails_chat.checks._llm_flow import entry_sites, send_sites
from shipbench.tasks.rails_chat.checks._rescue import SPLAT, Rescue, RescueIndex, rescue_index

CONFIGURATION_ERROR = ("RubyLLM::ConfigurationError", "StandardError", "Exception")
NETWORK_ERRORS = (
    ("Faraday::ConnectionFailed", "Faraday::Error", "StandardError", "Exception"),
    ("Faraday::TimeoutError", "Faraday::ServerError", "Faraday::Error", "StandardError", "Exception"),
)


@dataclass(frozen=True)
class Escape:
    failure: str  # what escapes, in words
    parsed: ParsedSource
    node: Node  # the call it escapes from


def catches(rescue: Rescue, ancestors: tuple[str, ...]) -> bool:
    """Bare, an unknown splatted list, or a class written as one of the exception's ancestors."""
    return not rescue.classes or any(c.startswith(SPLAT) or c.lstrip(":") in ancestors for c in rescue.classes)


def _caught(index: RescueIndex, parsed: ParsedSource, node: Node, ancestors: tuple[str, ...]) -> bool:
    return any(catches(r, ancestors) for r in index.coverage(parsed, node).rescues)


def escapes(
    index: RescueIndex,
    entries: list[tuple[ParsedSource, Node]],
    sends: list[tuple[ParsedSource, Node]],
    key_checked: bool,
) -> Iterator[Escape]:
    """One Escape per failure class that some rescued LLM path lets through (first place found)."""
    rescued_sends = [(p, n) for p, n in sends if index.coverage(p, n).rescues]
    if not rescued_sends:
        return  # nothing is rescued at all: errors.no_rescue says so
    if not key_checked:
        places = entries or rescued_sends
        loose = next(((p, n) for p, n in places if not _caught(index, p, n, CONFIGURATION_ERROR)), None)
        if loose is not None:
            yield Escape("a missing API key (RubyLLM::ConfigurationError, raised when the chat is built)", *loose)
    loose = next(
        ((p, n) for p, n in rescued_sends if not all(_caught(index, p, n, a) for a in NETWORK_ERRORS)),
        None,
    )
    if loose is not None:
        yield Escape("a network failure (Faraday::ConnectionFailed / TimeoutError after the gem's retries)", *loose)


def project_escapes(ctx: AuditContext, key_checked: bool) -> list[Escape]:
    app = ("app/", "lib/")
    prefix = ctx.app_prefix
    entries = [(s.parsed, s.node) for s in entry_sites(ctx) if s.parsed.rel.removeprefix(prefix).startswith(app)]
    sends = [(s.parsed, s.node) for s in send_sites(ctx)]
    return list(escapes(rescue_index(ctx), entries, sends, key_checked))
