"""Reading one Ruby `def`: its exact parameter list and what its body evidently does.

Invariants: pure functions over tree-sitter nodes, never raising on odd shapes; a parameter node we do
not recognise becomes a permissive `rest` so that verification errs towards "unverifiable";
constants in `forwards_to`/`returns` are raw (as written) and resolved later against the whole index.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipbench.audit.ruby.api_model import Param, ParamKind
from shipbench.audit.ruby.parse import Node, ParsedSource, walk

_PARAM_KINDS: dict[str, ParamKind] = {
    "identifier": "req",
    "optional_parameter": "opt",
    "splat_parameter": "rest",
    "hash_splat_parameter": "keyrest",
    "hash_splat_nil": "nokey",
    "block_parameter": "block",
    "forward_parameter": "fwd",
    "destructured_parameter": "req",
}
_SKIP = {"(", ")", ",", "comment", "|", ";"}
_NESTED_SCOPES = {"method", "singleton_method", "class", "module", "singleton_class"}


def params_of(src: ParsedSource, method: Node) -> list[Param]:
    """The parameter list of a `method`/`singleton_method` node, in declaration order."""
    plist = method.child_by_field_name("parameters")
    if plist is None:
        return []
    out: list[Param] = []
    for child in plist.named_children:
        if child.type in _SKIP:
            continue
        out.append(_param(src, child))
    return out


def _param(src: ParsedSource, node: Node) -> Param:
    if node.type == "keyword_parameter":
        kind = "key" if node.child_by_field_name("value") is not None else "keyreq"
        return Param(kind=kind, name=_name(src, node))
    kind = _PARAM_KINDS.get(node.type, "rest")
    if node.type == "identifier":
        return Param(kind="req", name=src.text(node))
    if kind in ("nokey", "fwd") or node.type == "destructured_parameter":
        return Param(kind=kind)
    return Param(kind=kind, name=_name(src, node))


def _name(src: ParsedSource, node: Node) -> str | None:
    name = node.child_by_field_name("name")
    return src.text(name) if name is not None else None


def method_name(src: ParsedSource, method: Node) -> str | None:
    """`foo`, `foo?`, `foo=` (setter), `==`, `[]`; None when the node has no name."""
    name = method.child_by_field_name("name")
    if name is None:
        return None
    return src.text(name).strip()


def body_statements(method: Node) -> list[Node]:
    """Top-level statements of a def's body (an endless def has exactly one)."""
    body = method.child_by_field_name("body")
    if body is None:
        return []
    if body.type == "body_statement":
        return [c for c in body.named_children if c.type not in ("comment", "rescue", "else", "ensure")]
    return [body]


@dataclass
class BodyFacts:
    returns_self: bool = False
    yields: bool = False
    forward_target: str | None = None  # raw: "Chat#initialize", "Embedding.embed", "#other", ".other"
    passes_through: bool = False  # the forwarding call receives exactly the def's own parameters, in order
    returns_const: str | None = None  # raw constant text of a trailing `Klass.new(...)`
    mm_calls_super_only: bool = False


def body_facts(src: ParsedSource, method: Node, params: list[Param]) -> BodyFacts:
    facts = BodyFacts()
    stmts = body_statements(method)
    facts.yields = any(p.kind == "block" for p in params) or _calls_yield(src, method)
    if not stmts:
        return facts
    last = stmts[-1]
    facts.returns_self = last.type == "self"
    if last.type == "call":
        facts.returns_const = _new_of(src, last)
    # `x[k] = Other.new(name, **opts)` / `@x = other(...)`: the value of the last statement is the call
    right = last.child_by_field_name("right") if last.type == "assignment" else None
    call = last if last.type == "call" else (right if right is not None and right.type == "call" else None)
    if call is not None and _forwards_params(src, call, params):
        facts.forward_target = _call_target(src, call)
        facts.passes_through = _passes_through(src, call, params)
    return facts


_PASSED = {"req": "identifier", "opt": "identifier", "rest": "splat_argument", "keyrest": "hash_splat_argument",
           "block": "block_argument"}  # fmt: skip


def _passes_through(src: ParsedSource, call: Node, params: list[Param]) -> bool:
    """The call's arguments are the def's parameters themselves, in order: `name, *rest, **opts, &blk`."""
    args = call.child_by_field_name("arguments")
    given = [a for a in args.named_children if a.type != "comment"] if args is not None else []
    if len(given) != len(params) or any(p.kind not in _PASSED or p.name is None for p in params):
        return False
    for param, arg in zip(params, given, strict=True):
        if arg.type != _PASSED[param.kind]:
            return False
        name = arg if arg.type == "identifier" else (arg.named_children[0] if arg.named_children else None)
        if name is None or src.text(name) != param.name:
            return False
    return True


def _calls_yield(src: ParsedSource, method: Node) -> bool:
    body = method.child_by_field_name("body")
    if body is None:
        return False
    for node in walk(body):
        if node.type == "yield":
            return True
        if node.type == "identifier" and src.text(node) == "block_given?":
            return True
    return False


def _new_of(src: ParsedSource, call: Node) -> str | None:
    receiver = call.child_by_field_name("receiver")
    meth = call.child_by_field_name("method")
    if receiver is None or meth is None or src.text(meth) != "new":
        return None
    if receiver.type in ("constant", "scope_resolution"):
        return src.text(receiver)
    return None


def _forwards_params(src: ParsedSource, call: Node, params: list[Param]) -> bool:
    """True when `call` passes on the def's `...`, `*rest` or `**kwrest` parameters."""
    args = call.child_by_field_name("arguments")
    if args is None:
        return False
    spread = {p.name for p in params if p.kind in ("rest", "keyrest")}
    anonymous = any(p.kind in ("rest", "keyrest") and p.name is None for p in params)
    for arg in args.named_children:
        if arg.type == "forward_argument":
            return True
        if arg.type in ("splat_argument", "hash_splat_argument"):
            inner = arg.named_children
            if not inner:
                return anonymous
            if src.text(inner[0]) in spread:
                return True
    return False


def _call_target(src: ParsedSource, call: Node) -> str | None:
    receiver = call.child_by_field_name("receiver")
    meth = call.child_by_field_name("method")
    if meth is None:
        return None
    name = src.text(meth)
    if receiver is None:
        return f"#{name}"
    if receiver.type == "self":
        return f".{name}"
    if receiver.type not in ("constant", "scope_resolution"):
        return None
    const = src.text(receiver)
    return f"{const}#initialize" if name == "new" else f"{const}.{name}"


def literal_names(src: ParsedSource, node: Node) -> list[str] | None:
    """Values of a literal `%i[...]`/`%w[...]`/`[:a, 'b']` array, or None if not literal."""
    if node.type == "call":  # `%i[a b].freeze`
        receiver = node.child_by_field_name("receiver")
        meth = node.child_by_field_name("method")
        if receiver is not None and meth is not None and src.text(meth) == "freeze":
            return literal_names(src, receiver)
        return None
    if node.type not in ("symbol_array", "string_array", "array"):
        return None
    out: list[str] = []
    for child in node.named_children:
        if child.type == "comment":
            continue
        value = symbol_value(src, child)
        if value is None:
            return None
        out.append(value)
    return out


def symbol_value(src: ParsedSource, node: Node) -> str | None:
    """`:foo`, `:'x='`, `"foo"`, `'foo'`, bare `%i` entries -> the name; None if not literal."""
    if node.type in ("bare_symbol", "bare_string"):
        if any(c.type == "interpolation" for c in node.named_children):
            return None
        return src.text(node)
    if node.type == "simple_symbol":
        return src.text(node)[1:]
    if node.type in ("delimited_symbol", "string"):
        if any(c.type == "interpolation" for c in node.named_children):
            return None
        text = src.text(node)
        text = text[1:] if text.startswith(":") else text
        return text[1:-1] if len(text) >= 2 else None
    return None
