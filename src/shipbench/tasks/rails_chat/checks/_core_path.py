"""Is a defective library call on the core chat path, the code every user turn runs?

Invariants: a call is on the core path unless its site is plainly conditional on something a turn
may not have: inside a `rescue` clause (only runs after another failure), or inside an iteration
over earlier turns while the app never keeps earlier turns (the loop body never runs). Decided per
call site from the syntax tree, never from names.
"""

from __future__ import annotations

from shipbench.audit.checks import AuditContext
from shipbench.audit.models import ApiCall
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import method_name

CORE_PATH = "core_path"
ITERATORS = frozenset(
    {
        "each", "each_with_index", "each_with_object", "reverse_each", "map", "flat_map", "filter_map",
        "collect", "inject", "reduce", "each_slice", "each_cons", "find_each", "times", "select", "filter",
    }
)  # fmt: skip


def call_node(ctx: AuditContext, call: ApiCall) -> tuple[ParsedSource, Node] | None:
    """The syntax node of a reported API call: a call or constant starting on its line, named like it."""
    parsed = ctx.parsed(call.path)
    if parsed is None:
        return None
    leaf = call.call.replace("#", ".").rsplit(".", 1)[-1].rsplit("::", 1)[-1]
    best: Node | None = None
    for node in of_type(parsed.root, "call", "constant", "scope_resolution"):
        if node.start_point[0] + 1 != call.line and node.end_point[0] + 1 != call.line:
            continue
        name = method_name(parsed, node) if node.type == "call" else parsed.text(node).rsplit("::", 1)[-1]
        smaller = best is None or (node.end_byte - node.start_byte) < (best.end_byte - best.start_byte)
        if name.rstrip("=") == leaf.rstrip("=") and smaller:
            best = node
    return None if best is None else (parsed, best)


def in_rescue(node: Node) -> bool:
    current = node.parent
    while current is not None:
        if current.type == "rescue":
            return True
        if current.type in ("method", "singleton_method", "class", "module", "program"):
            return False
        current = current.parent
    return False


def in_iteration(parsed: ParsedSource, node: Node) -> bool:
    """Inside the block of an iterator call (`xs.each do ... end`) or a `for`/`while` body."""
    current = node.parent
    while current is not None:
        if current.type in ("for", "while", "until"):
            return True
        if current.type in ("do_block", "block") and current.parent is not None:
            owner = current.parent
            if owner.type == "call" and method_name(parsed, owner) in ITERATORS:
                return True
        if current.type in ("method", "singleton_method", "class", "module", "program"):
            return False
        current = current.parent
    return False


def on_core_path(ctx: AuditContext, call: ApiCall, history_kept: bool) -> bool:
    found = call_node(ctx, call)
    if found is None:
        return True
    parsed, node = found
    if in_rescue(node):
        return False
    return history_kept or not in_iteration(parsed, node)
