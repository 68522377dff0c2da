"""The shapes of the objects a test file builds: its own classes, Structs, Data classes and OpenStructs.

A shape is a name plus the public methods its instances answer (defs, attribute readers, Struct/Data
members, OpenStruct keys), each with the node that defines it. `returned_shapes` follows what a `def`
evidently returns (its last expression and `return`s, through locals, ivars and branches) to shapes.
Invariants: pure functions over one parsed file, bounded (depth-limited, no recursion on cycles), never
raising; a value whose shape cannot be told yields nothing, so callers only ever see certain shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shipbench.audit.ruby.api_params import body_statements
from shipbench.audit.ruby.parse import Node, ParsedSource, walk

MAX_VALUE_DEPTH = 6
STRUCT_BUILDERS = {("Struct", "new"), ("Data", "define")}
OPEN_STRUCTS = frozenset({"OpenStruct", "ActiveSupport::OrderedOptions"})
_NESTED = frozenset({"method", "singleton_method", "class", "module", "singleton_class"})
_VISIBILITY = frozenset({"private", "protected", "public"})


@dataclass
class Shape:
    """A class (or Struct/OpenStruct value) defined by the test code, with its public instance methods."""

    name: str
    node: Node
    defs: dict[str, Node] = field(default_factory=dict)  # public instance `def`s
    attrs: dict[str, Node] = field(default_factory=dict)  # readers: attr_*, Struct members, OpenStruct keys

    def members(self) -> dict[str, Node]:
        return {**self.attrs, **self.defs}


# ---- the file's own classes


def file_shapes(parsed: ParsedSource) -> dict[str, Shape]:
    """Every class and Struct/Data constant the file defines, by its short name (reopenings merged)."""
    shapes: dict[str, Shape] = {}
    for node in walk(parsed.root):
        if node.type == "class":
            name_node = node.child_by_field_name("name")
            if name_node is None:
                continue
            short = parsed.text(name_node).split("::")[-1]
            shape = shapes.setdefault(short, Shape(name=short, node=node))
            read_class_body(parsed, shape, node)
            superclass = node.child_by_field_name("superclass")
            parent = superclass.named_children[0] if superclass is not None and superclass.named_children else None
            if parent is not None and _struct_call(parsed, parent) is not None:
                _add_struct_members(parsed, shape, parent)
        elif node.type == "assignment":
            _struct_constant(parsed, node, shapes)
    return shapes


def read_class_body(parsed: ParsedSource, shape: Shape, node: Node) -> None:
    """Public defs and attribute readers of a class body (visibility sections honoured)."""
    body = node.child_by_field_name("body")
    visibility = "public"
    for child in body.named_children if body is not None else []:
        if child.type == "identifier" and parsed.text(child) in _VISIBILITY:
            visibility = parsed.text(child)
        elif child.type == "method" and visibility == "public":
            _add_def(parsed, shape, child)
        elif child.type == "call":
            _read_class_call(parsed, shape, child)


def _add_def(parsed: ParsedSource, shape: Shape, method: Node) -> None:
    name = method.child_by_field_name("name")
    if name is not None:
        shape.defs.setdefault(parsed.text(name), method)


def _read_class_call(parsed: ParsedSource, shape: Shape, call: Node) -> None:
    method = call.child_by_field_name("method")
    args = call.child_by_field_name("arguments")
    if method is None or args is None or call.child_by_field_name("receiver") is not None:
        return
    name = parsed.text(method)
    if name in ("attr_reader", "attr_accessor", "attr"):
        for arg in args.named_children:
            if arg.type == "simple_symbol":
                shape.attrs.setdefault(parsed.text(arg).lstrip(":"), arg)
    elif name == "public":
        for arg in args.named_children:
            if arg.type == "method":
                _add_def(parsed, shape, arg)


def _struct_constant(parsed: ParsedSource, node: Node, shapes: dict[str, Shape]) -> None:
    """`Reply = Struct.new(:text)` / `Reply = Data.define(:text) do ... end`."""
    left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
    if left is None or right is None or left.type not in ("constant", "scope_resolution"):
        return
    if _struct_call(parsed, right) is None:
        return
    short = parsed.text(left).split("::")[-1]
    shape = shapes.setdefault(short, Shape(name=short, node=node))
    _add_struct_members(parsed, shape, right)


def _struct_call(parsed: ParsedSource, node: Node) -> str | None:
    """'Struct'/'Data' when `node` is `Struct.new(...)`/`Data.define(...)` (block or not)."""
    if node.type != "call":
        return None
    recv, method = node.child_by_field_name("receiver"), node.child_by_field_name("method")
    if recv is None or method is None:
        return None
    key = (parsed.text(recv).lstrip(":"), parsed.text(method))
    return key[0] if key in STRUCT_BUILDERS else None


def _add_struct_members(parsed: ParsedSource, shape: Shape, builder: Node) -> None:
    args = builder.child_by_field_name("arguments")
    for arg in args.named_children if args is not None else []:
        if arg.type == "simple_symbol":
            shape.attrs.setdefault(parsed.text(arg).lstrip(":"), arg)
    block = builder.child_by_field_name("block")
    if block is not None:
        read_class_body(parsed, shape, block)


# ---- what a def returns


@dataclass
class _Ctx:
    parsed: ParsedSource
    shapes: dict[str, Shape]
    method: Node
    owner: Node | None  # the class node, for instance variables
    label: str  # "FakeChat#ask", names anonymous shapes
    namespace: str  # the gem's: its constants are real classes, never the test's shapes
    seen: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Returning:
    """A `def` whose result is followed: its node, its class node (for ivars), the gem namespace."""

    method: Node
    owner: Node | None
    label: str  # "FakeChat#ask"
    namespace: str


def returned_shapes(parsed: ParsedSource, shapes: dict[str, Shape], ret: Returning) -> list[Shape]:
    """The shapes a `def` evidently returns: from its last statement and its explicit `return`s."""
    ctx = _Ctx(parsed, shapes, ret.method, ret.owner, ret.label, ret.namespace)
    values = [_returned_value(n) for n in own_nodes(ret.method, "return") if n.named_children]
    stmts = body_statements(ret.method)
    if stmts:
        values.append(stmts[-1])
    out: list[Shape] = []
    for value in values:
        out += _value(ctx, value, 0)
    return _unique(out)


def returned_elements(parsed: ParsedSource, shapes: dict[str, Shape], ret: Returning) -> list[Shape]:
    """The shapes of the elements of an Array literal a `def` returns (`[Reply.new, ...]`)."""
    ctx = _Ctx(parsed, shapes, ret.method, ret.owner, ret.label, ret.namespace)
    stmts = body_statements(ret.method)
    if not stmts or stmts[-1].type != "array":
        return []
    out: list[Shape] = []
    for element in stmts[-1].named_children:
        out += _value(ctx, element, 0)
    return _unique(out)


def _returned_value(node: Node) -> Node:
    """The value of `return x` (tree-sitter wraps it in an argument_list)."""
    value = node.named_children[0]
    return value.named_children[0] if value.type == "argument_list" and value.named_children else value


def _unique(shapes: list[Shape]) -> list[Shape]:
    return list({s.name: s for s in shapes}.values())


def _value(ctx: _Ctx, node: Node, depth: int) -> list[Shape]:
    if depth > MAX_VALUE_DEPTH:
        return []
    kind = node.type
    if kind == "call":
        return _call_value(ctx, node)
    if kind == "identifier":
        return _assigned(ctx, node, ctx.method, depth)
    if kind == "instance_variable" and ctx.owner is not None:
        return _assigned(ctx, node, ctx.owner, depth)
    if kind in ("parenthesized_statements", "begin", "then", "else", "body_statement"):
        stmts = [c for c in node.named_children if c.type not in ("comment", "rescue", "ensure")]
        return _value(ctx, stmts[-1], depth + 1) if stmts else []
    if kind in ("if", "unless", "conditional", "elsif", "case", "when"):
        return _branches(ctx, node, depth)
    if kind in ("assignment", "operator_assignment"):
        right = node.child_by_field_name("right")
        return _value(ctx, right, depth + 1) if right is not None else []
    return []


def _branches(ctx: _Ctx, node: Node, depth: int) -> list[Shape]:
    out: list[Shape] = []
    for name in ("consequence", "alternative"):
        branch = node.child_by_field_name(name)
        if branch is not None:
            out += _value(ctx, branch, depth + 1)
    for child in node.named_children:
        if child.type in ("when", "else"):
            out += _value(ctx, child, depth + 1)
    if node.type == "when":
        body = node.child_by_field_name("body")
        out += _value(ctx, body, depth + 1) if body is not None else []
    return out


def _assigned(ctx: _Ctx, var: Node, scope: Node, depth: int) -> list[Shape]:
    """Union of the shapes assigned to a local (in the def) or an ivar (in the class), each once."""
    name = ctx.parsed.text(var)
    key = f"{scope.id}:{name}"
    if key in ctx.seen:
        return []
    ctx.seen.add(key)
    out: list[Shape] = []
    for node in walk(scope):
        if node.type not in ("assignment", "operator_assignment"):
            continue
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is not None and right is not None and left.type == var.type and ctx.parsed.text(left) == name:
            out += _value(ctx, right, depth + 1)
    return out


def _call_value(ctx: _Ctx, call: Node) -> list[Shape]:
    recv, method = call.child_by_field_name("receiver"), call.child_by_field_name("method")
    if recv is None or method is None or ctx.parsed.text(method) != "new":
        return []
    if recv.type in ("constant", "scope_resolution"):
        const = ctx.parsed.text(recv).lstrip(":")
        if const in OPEN_STRUCTS:
            return [_open_struct(ctx, call)]
        if ctx.namespace and (const == ctx.namespace or const.startswith(ctx.namespace + "::")):
            return []  # a real gem object, not a double
        found = ctx.shapes.get(const.split("::")[-1])
        return [found] if found is not None else []
    builder = _struct_call(ctx.parsed, recv)
    if builder is not None:
        shape = Shape(name=f"{ctx.label} (anonymous {builder})", node=recv)
        _add_struct_members(ctx.parsed, shape, recv)
        return [shape]
    return []


def _open_struct(ctx: _Ctx, call: Node) -> Shape:
    shape = Shape(name=f"{ctx.label} (OpenStruct)", node=call)
    args = call.child_by_field_name("arguments")
    pairs: list[Node] = []
    for arg in args.named_children if args is not None else []:
        pairs += [arg] if arg.type == "pair" else [c for c in arg.named_children if c.type == "pair"]
    for pair in pairs:
        key = pair.child_by_field_name("key")
        if key is None:
            continue
        text = ctx.parsed.text(key)
        if key.type == "hash_key_symbol":
            shape.attrs.setdefault(text, key)
        elif key.type == "simple_symbol":
            shape.attrs.setdefault(text.lstrip(":"), key)
    return shape


def own_nodes(method: Node, node_type: str) -> list[Node]:
    """Nodes of a type inside a def's body, not descending into nested defs or classes."""
    body = method.child_by_field_name("body")
    if body is None:
        return []
    out: list[Node] = []
    stack = [body]
    while stack:
        node = stack.pop()
        if node.type == node_type:
            out.append(node)
        stack += [c for c in node.children if c.type not in _NESTED]
    return out
