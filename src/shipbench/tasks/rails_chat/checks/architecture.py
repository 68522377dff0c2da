"""rails-chat checks for the `architecture` dimension: a layer between HTTP and the LLM, thin controllers.

Invariants: only files under app/controllers/ are examined; a method's length is its non-blank,
non-comment body lines (the `def` and `end` lines excluded), so formatting choices do not count;
every method defined in a controller counts (private helpers are controller logic too), and each
hit carries evidence at the offending `def` line, or at the class line for an over-long file.
"""

from __future__ import annotations

from collections.abc import Iterator

from shipbench.audit.checks import AuditContext, Check, Hit
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import (
    LLM_CONSTANT,
    CallSite,
    calls,
    class_name,
    def_name,
    enclosing_class,
    llm_entry_calls,
)

MAX_METHOD_LINES = 25
MAX_FILE_LINES = 150


def controller_sources(ctx: AuditContext) -> list[ParsedSource]:
    """Every Ruby file of the controller layer (controllers and their concerns)."""
    return ctx.ruby_sources("app/controllers")


_NOT_TALKING = frozenset({"configure", "config"})


def llm_constant_calls(parsed: ParsedSource) -> list[CallSite]:
    """Calls made on a RubyLLM constant (`RubyLLM.chat`, `RubyLLM::Chat.new`, an invented `RubyLLM::Client.new`),
    configuration excepted: the controller is talking to the LLM library itself."""
    sites = {s.node.id: s for s in llm_entry_calls(parsed)}
    for site in calls(parsed):
        receiver = site.node.child_by_field_name("receiver")
        if receiver is None or receiver.type not in ("constant", "scope_resolution"):
            continue
        root = site.receiver.lstrip(":").split("::", 1)[0]
        if root == LLM_CONSTANT and site.method not in _NOT_TALKING:
            sites.setdefault(site.node.id, site)
    return sorted(sites.values(), key=lambda s: (s.line, s.node.start_byte))


def check_llm_in_controller(ctx: AuditContext) -> Iterator[Hit]:
    for parsed in controller_sources(ctx):
        sites = llm_constant_calls(parsed)
        if not sites:
            continue
        shown = ", ".join(sorted({f"{s.receiver}.{s.method}" for s in sites}))
        yield Hit(
            "architecture.llm_in_controller",
            f"{parsed.rel} calls RubyLLM directly ({shown}): no service or model between HTTP and the LLM",
            tuple(ctx.at(parsed, s.node) for s in sites),
            key=parsed.rel,
        )


def body_line_count(parsed: ParsedSource, method: Node) -> int:
    """Non-blank, non-comment lines strictly between the `def` line and the `end` line."""
    first, last = method.start_point[0] + 1, method.end_point[0] + 1
    count = 0
    for line in range(first + 1, last):
        text = parsed.line_text(line)
        if text and not text.startswith("#"):
            count += 1
    return count


def _qualified(parsed: ParsedSource, method: Node) -> str:
    klass = enclosing_class(method)
    owner = class_name(parsed, klass) if klass is not None else ""
    name = def_name(parsed, method)
    return f"{owner}#{name}" if owner else name


def _long_methods(ctx: AuditContext, parsed: ParsedSource) -> Iterator[Hit]:
    for method in of_type(parsed.root, "method", "singleton_method"):
        lines = body_line_count(parsed, method)
        if lines > MAX_METHOD_LINES:
            name = _qualified(parsed, method)
            yield Hit(
                "architecture.fat_controller",
                f"{name} has {lines} lines of body (limit {MAX_METHOD_LINES})",
                (ctx.at(parsed, method),),
                key=f"{parsed.rel}#{def_name(parsed, method)}@{method.start_point[0] + 1}",
            )


def _long_file(ctx: AuditContext, parsed: ParsedSource) -> Iterator[Hit]:
    total = len(parsed.source.rstrip(b"\n").split(b"\n")) if parsed.source.strip() else 0
    if total <= MAX_FILE_LINES:
        return
    klass = next(of_type(parsed.root, "class", "module"), None)
    evidence = ctx.at(parsed, klass) if klass is not None else ctx.at_line(parsed.rel, 1)
    yield Hit(
        "architecture.fat_controller",
        f"{parsed.rel} is {total} lines long (limit {MAX_FILE_LINES})",
        (evidence,),
        key=parsed.rel,
    )


def check_fat_controller(ctx: AuditContext) -> Iterator[Hit]:
    for parsed in controller_sources(ctx):
        yield from _long_file(ctx, parsed)
        yield from _long_methods(ctx, parsed)


CHECKS: list[Check] = [check_llm_in_controller, check_fat_controller]
