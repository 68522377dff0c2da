"""Syntax helpers shared by the rails-chat checks: calls, definitions, where the LLM is used.

Invariants: helpers are pure functions of parsed trees; they never read files themselves (they go
through `AuditContext.parsed`), and they recognise Ruby forms generally (receivers, parens or not,
`do` or braces), never specific fixture names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, of_type

LLM_CONSTANT = "RubyLLM"
SEND_METHODS = frozenset({"ask", "say", "complete"})
ENTRY_METHODS = frozenset({"chat"})


@dataclass(frozen=True)
class CallSite:
    parsed: ParsedSource
    node: Node  # the `call` node

    @property
    def method(self) -> str:
        return method_name(self.parsed, self.node)

    @property
    def receiver(self) -> str:
        recv = self.node.child_by_field_name("receiver")
        return self.parsed.text(recv) if recv is not None else ""

    @property
    def line(self) -> int:
        return self.node.start_point[0] + 1


def method_name(parsed: ParsedSource, call: Node) -> str:
    name = call.child_by_field_name("method")
    return parsed.text(name) if name is not None else ""


def calls(parsed: ParsedSource, *names: str) -> Iterator[CallSite]:
    """Every method call (with or without receiver/parens) whose name is one of `names` (all if none).

    Bare identifiers that tree-sitter cannot tell from local variables (`ask` alone) are not calls.
    """
    wanted = set(names)
    for node in of_type(parsed.root, "call"):
        site = CallSite(parsed, node)
        if not wanted or site.method in wanted:
            yield site
    # `foo arg` without receiver parses as (call method: ...) too; `foo` alone is an identifier.


def constant_refs(parsed: ParsedSource, root_name: str) -> Iterator[Node]:
    """Top-most constant nodes naming `root_name` or `root_name::X...` (`::RubyLLM` included)."""
    for node in of_type(parsed.root, "constant"):
        if parsed.text(node) != root_name:
            continue
        parent = node.parent
        # climb scope_resolution chains: RubyLLM::Chat -> the whole chain
        top = node
        while parent is not None and parent.type == "scope_resolution":
            top = parent
            parent = parent.parent
        yield top


def references_llm(parsed: ParsedSource) -> bool:
    return any(True for _ in constant_refs(parsed, LLM_CONSTANT))


def enclosing_method(node: Node) -> Node | None:
    return enclosing(node, "method", "singleton_method")


def enclosing_class(node: Node) -> Node | None:
    return enclosing(node, "class", "module")


def def_name(parsed: ParsedSource, method: Node) -> str:
    name = method.child_by_field_name("name")
    return parsed.text(name) if name is not None else ""


def class_name(parsed: ParsedSource, klass: Node) -> str:
    name = klass.child_by_field_name("name")
    return parsed.text(name) if name is not None else ""


def llm_entry_calls(parsed: ParsedSource) -> list[CallSite]:
    """`RubyLLM.chat(...)`, `RubyLLM::Chat.new(...)`, `RubyLLM.context{}.chat`, `::RubyLLM.chat`."""
    found: list[CallSite] = []
    for site in calls(parsed):
        recv = site.receiver.lstrip(":")
        if (site.method == "chat" and (recv == LLM_CONSTANT or recv.startswith(LLM_CONSTANT + ".context"))) or (
            site.method == "new" and recv == f"{LLM_CONSTANT}::Chat"
        ):
            found.append(site)
    return found


def app_ruby(ctx: AuditContext) -> list[ParsedSource]:
    """The app's own Ruby (app/, lib/, config/), tests excluded."""
    return ctx.ruby_sources("app") + ctx.ruby_sources("lib") + ctx.ruby_sources("config")


def llm_sources(ctx: AuditContext) -> list[ParsedSource]:
    """App Ruby files that mention the RubyLLM constant."""
    return [p for p in app_ruby(ctx) if references_llm(p)]


def is_controller(parsed: ParsedSource) -> bool:
    return "/controllers/" in f"/{parsed.rel}" and parsed.rel.endswith("_controller.rb")
