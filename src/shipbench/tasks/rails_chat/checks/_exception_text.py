"""Where a rescued LLM failure's own text reaches the user: `e.message`, `e.to_s`, `"#{e}"` flowing
into a flash, a render, a turbo stream, a broadcast or an instance variable a view reads.

Invariants: judged only on rescues that cover an LLM send (see errors._covering), following the
exception variable of the clause (or the first parameter of a rescue_from handler) and, one level
deep, an app method the variable is passed to; a text the rescue returns (not raises) is the turn's
reply, so shown; text inside logging calls is not shown; a rescued
app error class whose every raise carries a fixed text is a friendly message, not a leak.
"""

from __future__ import annotations

from collections.abc import Iterator

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import (
    app_ruby,
    call_arguments,
    def_name,
    in_logging,
    is_plain_string,
    method_name,
)
from shipbench.tasks.rails_chat.checks._rescue import Rescue

TEXT_METHODS = frozenset({"message", "to_s", "full_message", "inspect", "detailed_message"})
SHOW_CALLS = frozenset(
    {"render", "redirect_to", "flash", "turbo_stream", "replace", "append", "prepend", "update", "respond_with"}
)
RAISES = frozenset({"raise", "fail"})


def exception_variable(parsed: ParsedSource, rescue: Rescue) -> str:
    """The name the failure is bound to in this handler ('' when it is not bound)."""
    if rescue.kind == "clause":
        var = next((c for c in rescue.node.named_children if c.type == "exception_variable"), None)
        ident = next(iter(of_type(var, "identifier")), None) if var is not None else None
        return parsed.text(ident) if ident is not None else ""
    if rescue.kind == "rescue_from" and rescue.body is not None:
        owner = rescue.body.parent  # a handler method or a block
        params = owner.child_by_field_name("parameters") if owner is not None else None
        first = next(iter(of_type(params, "identifier")), None) if params is not None else None
        return parsed.text(first) if first is not None else ""
    return ""


def _texts_of(parsed: ParsedSource, scope: Node, var: str) -> Iterator[Node]:
    """Expressions in `scope` that turn the exception `var` into text."""
    for ident in of_type(scope, "identifier"):
        if parsed.text(ident) != var or ident.parent is None:
            continue
        parent = ident.parent
        if parent.type == "call" and parent.child_by_field_name("receiver") == ident:
            if method_name(parsed, parent) in TEXT_METHODS:
                yield parent
        elif parent.type == "interpolation":
            yield ident


def _shown(parsed: ParsedSource, node: Node, top: Node) -> bool:
    """`node` ends up in something the user sees: a render/flash/stream call, a flash or ivar write."""
    if in_logging(parsed, node, top):
        return False
    current: Node | None = node.parent
    while current is not None and current != top.parent:
        if current.type == "call":
            name = method_name(parsed, current)
            if name in SHOW_CALLS or name.startswith("broadcast"):
                return True
        if current.type in ("assignment", "operator_assignment"):
            left = current.child_by_field_name("left")
            if left is not None and left.type == "instance_variable":
                return True
            if left is not None and left.type == "element_reference" and "flash" in parsed.text(left):
                return True
        if current.type == "pair":
            key = current.child_by_field_name("key")
            if key is not None and parsed.text(key).strip(":") in ("alert", "notice", "flash"):
                return True
        current = current.parent
    return False


def _in_reply(parsed: ParsedSource, node: Node, returned: Node | None, shown_fields: set[str]) -> bool:
    """`node` is the value a rescue returns as the reply (a string, the text itself), or a field of a
    returned result object that the app displays (`Result.new(error: e.message)` with `#{r.error}`
    interpolated or printed somewhere), outside any logging call."""
    if returned is None or not returned.start_byte <= node.start_byte < returned.end_byte:
        return False
    if in_logging(parsed, node, returned):
        return False
    pair = node.parent
    while pair is not None and pair != returned and pair.type != "pair":
        pair = pair.parent
    if pair is not None and pair.type == "pair":
        key = pair.child_by_field_name("key")
        return key is not None and parsed.text(key).strip(":\"'") in shown_fields
    return returned.type in ("string", "identifier", "call", "interpolation", "assignment") or node == returned


def displayed_fields(ctx: AuditContext) -> set[str]:
    """Names read as `x.name` into text the user sees: interpolated into a string or printed by an ERB
    output tag (a predicate `x.name?` is a flag, not text)."""
    names: set[str] = set()
    for parsed in app_ruby(ctx) + ctx.erb_sources("app"):
        for call in of_type(parsed.root, "call"):
            name = method_name(parsed, call)
            if not name or name.endswith("?") or call.child_by_field_name("receiver") is None:
                continue
            parent = call.parent
            printed = parsed.kind == "erb" and parent is not None and parent.type in ("program", "body_statement")
            if printed or (parent is not None and parent.type == "interpolation"):
                names.add(name)
    return names


def _returned_statement(rescue: Rescue) -> Node | None:
    """The last statement of a rescue clause: what the method answers instead of the reply."""
    if rescue.kind != "clause" or rescue.body is None:
        return None
    named = [c for c in rescue.body.named_children if c.type != "comment"]
    last = named[-1] if named else None
    if last is not None and last.type == "call" and method_name(rescue.parsed, last) in RAISES:
        return None  # re-raised: whoever rescues it decides what is shown (see _friendly)
    return last


def _handed_to(
    parsed: ParsedSource, scope: Node, var: str, sources: list[ParsedSource]
) -> Iterator[tuple[ParsedSource, Node, str]]:
    """App methods the exception is passed to from `scope`: (file, method body, parameter name)."""
    for call in of_type(scope, "call"):
        args = call_arguments(call)
        positions = [i for i, a in enumerate(args) if a.type == "identifier" and parsed.text(a) == var]
        if not positions:
            continue
        name = method_name(parsed, call)
        for other in sources:
            for method in of_type(other.root, "method"):
                if def_name(other, method) != name:
                    continue
                params = method.child_by_field_name("parameters")
                names = [p for p in (params.named_children if params is not None else []) if p.type == "identifier"]
                body = method.child_by_field_name("body")
                if body is not None and positions[0] < len(names):
                    yield other, body, other.text(names[positions[0]])


def _raised(parsed: ParsedSource, call: Node) -> tuple[str, list[Node]] | None:
    """`raise K`, `raise K, text`, `raise K.new(text)`: (K's last name, the text arguments)."""
    if method_name(parsed, call) not in RAISES or call.child_by_field_name("receiver") is not None:
        return None
    args = call_arguments(call)
    if not args:
        return None
    first = args[0]
    if first.type == "call" and method_name(parsed, first) == "new":
        recv = first.child_by_field_name("receiver")
        if recv is None:
            return None
        return parsed.text(recv).rsplit("::", 1)[-1], call_arguments(first)
    if first.type in ("constant", "scope_resolution"):
        return parsed.text(first).rsplit("::", 1)[-1], args[1:]
    return None


def _app_classes(sources: list[ParsedSource]) -> set[str]:
    return {
        p.text(n).rsplit("::", 1)[-1]
        for p in sources
        for c in of_type(p.root, "class")
        if (n := c.child_by_field_name("name")) is not None
    }


def _friendly(sources: list[ParsedSource], defined: set[str], rescue: Rescue) -> bool:
    """Every rescued class is an app error, raised only with fixed texts (or none): its message is the app's."""
    if not rescue.classes:
        return False
    leaves = {k.lstrip(":").rsplit("::", 1)[-1] for k in rescue.classes}
    if any(k.lstrip(":").startswith("RubyLLM") for k in rescue.classes) or not leaves <= defined:
        return False
    for parsed in sources:
        for call in of_type(parsed.root, "call"):
            raised = _raised(parsed, call)
            if raised is None or raised[0] not in leaves:
                continue
            if any(not is_plain_string(t) and t.type not in ("pair", "hash") for t in raised[1]):
                return False
    return True


def shown_exception_texts(ctx: AuditContext, rescues: list[Rescue]) -> Iterator[tuple[ParsedSource, Node]]:
    """(file, expression) for each place a covering rescue shows the failure's own text to the user."""
    sources = app_ruby(ctx)
    defined = _app_classes(sources)
    fields = displayed_fields(ctx)
    for rescue in rescues:
        var = exception_variable(rescue.parsed, rescue)
        if not var or rescue.body is None or _friendly(sources, defined, rescue):
            continue
        returned = _returned_statement(rescue)
        for node in _texts_of(rescue.parsed, rescue.body, var):
            if _shown(rescue.parsed, node, rescue.body) or _in_reply(rescue.parsed, node, returned, fields):
                yield rescue.parsed, node
        for other, body, param in _handed_to(rescue.parsed, rescue.body, var, sources):
            for node in _texts_of(other, body, param):
                if _shown(other, node, body):
                    yield other, node
