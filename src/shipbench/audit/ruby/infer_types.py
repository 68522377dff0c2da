"""A small, explicit type inference over one parsed Ruby/ERB file: which expressions hold gem values.

Values: a constant `RubyLLM`/`RubyLLM::X` is the class itself; a call's type comes from the receiver's
type through `GemApi.result_type` (facts, `returns`, forwarding to a constructor, `returns_self`);
`x[i]`/`first`/`last` on an Array of gem values is an element; block parameters are typed by the call
they are passed to (`configure { |config| }`, `each { |m| }` over a Chat, `complete { |chunk| }`).
Flows: a local variable takes the last assignment before the read in the same method (a conditional
assignment joins the earlier ones; differing types give unknown); an instance variable read with no
earlier assignment in its method takes the single type of every assignment to it in the class; a bare
name that is not a local is a helper method of the enclosing class, typed by its last expression; a
project model calling a gem macro (`acts_as_chat`) is a record: `Chat.find(id)` is one, and calls on it
are typed through the modules the macro mixes in (resolve_records); a
method parameter with a default (`def initialize(llm: RubyLLM)`) takes the default's type, the
production path of an injected dependency.
Invariants: inference is memoised per node and cycle-safe (a cycle is unknown); `None` is "not a gem
value" and nothing is ever guessed: anything outside these rules is `None`.
"""

from __future__ import annotations

from shipbench.audit.ruby.infer_model import RType
from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing
from shipbench.audit.ruby.resolve_api import GemApi
from shipbench.audit.ruby.resolve_records import RECORD_KINDS, Record, record_block_param, record_result

SCOPES = frozenset({"method", "singleton_method", "class", "module", "singleton_class", "program"})
CLASS_SCOPES = frozenset({"class", "module"})
BLOCKS = frozenset({"block", "do_block"})
CONDITIONAL = frozenset(
    {
        "if",
        "unless",
        "if_modifier",
        "unless_modifier",
        "elsif",
        "else",
        "case",
        "when",
        "in_clause",
        "conditional",
        "rescue",
        "rescue_modifier",
        "ensure",
        "while",
        "until",
        "while_modifier",
        "until_modifier",
        "for",
        "block",
        "do_block",
        "lambda",
        "binary",
    }
)
ASSIGNMENTS = frozenset({"assignment", "operator_assignment"})
_PENDING = RType("opaque", "<cycle>")


class FileTypes:
    """Type inference over one file; create one per file and ask `type_of(node)`."""

    def __init__(
        self,
        parsed: ParsedSource,
        apis: list[GemApi],
        project_constants: set[str] | None = None,
        records: dict[str, Record] | None = None,
        injected: dict[tuple[str, str], tuple[ParsedSource, Node]] | None = None,
    ) -> None:
        self.parsed = parsed
        self.apis = apis
        self.project_constants = project_constants or set()
        self.records = records or {}
        self.injected = injected or {}  # (class, constructor keyword) -> a callable the project passes there
        self._callables: dict[str, tuple[ParsedSource, Node]] = {}
        self._memo: dict[int, RType | None] = {}
        self._assigns: dict[int, dict[str, list[Node]]] = {}
        self._methods: dict[int, dict[str, Node]] = {}
        self._ivars: dict[tuple[int, str], RType | None] = {}

    def api_for(self, name: str) -> GemApi | None:
        origin = name.lstrip(":")
        return next((api for api in self.apis if api.owns(origin.split(".")[0].split("#")[0])), None)

    # ---- values

    def type_of(self, node: Node) -> RType | None:
        key = node.id
        if key in self._memo:
            found = self._memo[key]
            return None if found is _PENDING else found
        self._memo[key] = _PENDING
        try:
            result = self._infer(node)
        except RecursionError:
            result = None
        self._memo[key] = result
        return result

    def _infer(self, node: Node) -> RType | None:
        kind = node.type
        if kind in ("constant", "scope_resolution"):
            return self.constant_type(self.parsed.text(node))
        if kind == "call":
            return self._call_type(node)
        if kind == "identifier":
            return self._identifier_type(node)
        if kind == "instance_variable":
            return self._ivar_type(node)
        if kind == "element_reference":
            obj = node.child_by_field_name("object")
            inner = self.type_of(obj) if obj is not None else None
            return RType.instance(inner.name) if inner is not None and inner.kind == "array" else None
        if kind in ASSIGNMENTS:
            return self._assigned_type(node)
        if kind in ("parenthesized_statements", "begin_block"):
            last = _last_expression(node)
            return self.type_of(last) if last is not None else None
        if kind == "lambda" or (kind == "call" and _is_proc_literal(self.parsed, node)):
            return self.callable(self.parsed, node)
        return None

    # ---- callables: lambdas and procs whose result is what `.call` returns

    def callable(self, parsed: ParsedSource, node: Node) -> RType:
        key = f"{parsed.rel}:{node.start_byte}"
        self._callables[key] = (parsed, node)
        return RType("callable", key)

    def called_type(self, rtype: RType) -> RType | None:
        """What calling a callable returns: the type of its body's last expression, in its own file."""
        if rtype.name == UNTYPED_CALLABLE:
            return RType.opaque(UNTYPED_RESULT)
        found = self._callables.get(rtype.name)
        if found is None:
            return None
        parsed, node = found
        if node.type in ("method", "singleton_method"):  # `method(:build_chat)`
            body: Node | None = node.child_by_field_name("body")
        else:
            block = node.child_by_field_name("body") or node.child_by_field_name("block")
            block = block or next((c for c in node.named_children if c.type in ("block", "do_block")), None)
            body = (
                next((c for c in block.named_children if c.type in ("block_body", "body_statement")), None)
                if block
                else None
            )
        last = _last_expression(body) if body is not None else None
        if last is None:
            return None
        if parsed is self.parsed:
            return self.type_of(last)
        return FileTypes(parsed, self.apis, self.project_constants, self.records).type_of(last)

    def constant_type(self, text: str) -> RType | None:
        name = "".join(text.split()).lstrip(":")
        if name in self.records:
            return RType("record_class", name)
        api = self.api_for(name)
        if api is None or api.foreign_constant(name) is not None:
            return None
        if name in self.project_constants and (api.index is None or api.find_class(name) is None):
            return None  # the project's own class inside the gem namespace
        if api.index is None or name == api.namespace or api.find_class(name) is not None:
            return RType.const(name)
        if api.constant_location(name) is not None:
            return None  # a value constant (VERSION, ROLES): not a receiver we verify
        return RType.opaque(name)

    def _call_type(self, node: Node) -> RType | None:
        recv = node.child_by_field_name("receiver")
        method = self.parsed.text(m) if (m := node.child_by_field_name("method")) is not None else ""
        if recv is None or recv.type == "self":
            return self.helper_type(method, node)
        rtype = self.type_of(recv)
        if rtype is None:
            return None
        if rtype.kind == "callable":
            return self.called_type(rtype) if method in CALL_METHODS else None
        if rtype.kind in RECORD_KINDS:
            record = self.records.get(rtype.name)
            return record_result(record, rtype, method) if record is not None else None
        api = self.api_for(rtype.name)
        return api.result_type(rtype, method) if api is not None else None

    # ---- local variables and block parameters

    def _identifier_type(self, node: Node) -> RType | None:
        name = self.parsed.text(node)
        found, btype = self._block_param(name, node)
        if found:
            return btype
        scope = scope_of(node)
        local = self._flow_type(scope, name, node)
        if local is not None:
            return local[0]
        if name in _param_names(self.parsed, scope):
            default = _param_default(self.parsed, scope, name)
            if default is not None:
                return self.type_of(default)
            return self._injected_type(scope, name)
        return self.helper_type(name, node)

    def _block_param(self, name: str, node: Node) -> tuple[bool, RType | None]:
        current = node.parent
        while current is not None and current.type not in SCOPES:
            if current.type in BLOCKS or current.type == "lambda":
                params = current.child_by_field_name("parameters")
                names = _block_param_names(self.parsed, params) if params is not None else []
                if name in names:
                    if current.type == "lambda":
                        return True, None
                    return True, self._block_param_type(current, names.index(name))
            current = current.parent
        return False, None

    def _block_param_type(self, block: Node, position: int) -> RType | None:
        call = block.parent
        if call is None or call.type != "call":
            return None
        recv = call.child_by_field_name("receiver")
        method_node = call.child_by_field_name("method")
        if recv is None or method_node is None:
            return None
        rtype = self.type_of(recv)
        if rtype is not None and position == 0 and self.parsed.text(method_node) in SELF_YIELDING:
            return rtype  # Kernel#tap / #then / #yield_self yield the receiver itself
        if rtype is not None and rtype.kind in RECORD_KINDS:
            record = self.records.get(rtype.name)
            return record_block_param(record, rtype, self.parsed.text(method_node), position) if record else None
        api = self.api_for(rtype.name) if rtype is not None else None
        if rtype is None or api is None:
            return None
        return api.block_param_type(rtype, self.parsed.text(method_node), position)

    def _flow_type(self, scope: Node, name: str, read: Node) -> tuple[RType | None] | None:
        """The type of `name` at `read` from assignments in `scope`; None when there is none before it."""
        before = [a for a in self._assignments(scope).get(name, []) if a.end_byte <= read.start_byte]
        if not before:
            return None
        types: list[RType | None] = []
        for assign in reversed(before):
            types.append(self._assigned_type(assign))
            if not _is_conditional(assign, read, scope):
                break
        first = types[0]
        return (first if all(t == first for t in types) else None,)

    def _assigned_type(self, assign: Node) -> RType | None:
        right = assign.child_by_field_name("right")
        if right is None:
            return None
        if assign.type == "operator_assignment":
            op = assign.child_by_field_name("operator")
            if op is None or self.parsed.text(op) not in ("||=", "&&="):
                return None
        return self.type_of(right)

    def _assignments(self, scope: Node) -> dict[str, list[Node]]:
        if scope.id not in self._assigns:
            found: dict[str, list[Node]] = {}
            for node in _walk_scope(scope, descend_methods=False):
                left = node.child_by_field_name("left") if node.type in ASSIGNMENTS else None
                if left is not None and left.type in ("identifier", "instance_variable"):
                    found.setdefault(self.parsed.text(left), []).append(node)
            self._assigns[scope.id] = found
        return self._assigns[scope.id]

    # ---- instance variables and helper methods of the enclosing class

    def _injected_type(self, scope: Node, name: str) -> RType | None:
        """A constructor parameter without default that the project fills with a callable (`Thread.new(
        chat_builder: -> { RubyLLM.chat })` in a controller): the callable's type."""
        if scope.type != "method" or self.parsed.text(scope.child_by_field_name("name") or scope) != "initialize":
            return None
        params = scope.child_by_field_name("parameters")
        keyword = params is not None and any(
            c.type == "keyword_parameter" and self.parsed.text(c.child_by_field_name("name") or c) == name
            for c in params.named_children
        )
        if not keyword:
            return None  # only keyword parameters are filled by name from other files (see add_injections)
        klass = enclosing_class(scope)
        cname = self.parsed.text(klass.child_by_field_name("name") or klass).rsplit("::", 1)[-1] if klass else ""
        found = self.injected.get((cname, name))
        if found is not None:
            return self.callable(*found)
        return RType("callable", UNTYPED_CALLABLE)  # called below, it yields a value nothing can type

    def _ivar_type(self, node: Node) -> RType | None:
        name = self.parsed.text(node)
        scope = scope_of(node)
        local = self._flow_type(scope, name, node)
        if local is not None:
            return local[0]
        klass = enclosing_class(node)
        if klass is None:
            return None
        key = (klass.id, name)
        if key not in self._ivars:
            self._ivars[key] = None
            assigns = [
                n
                for n in _walk_scope(klass, descend_methods=True)
                if n.type in ASSIGNMENTS
                and (left := n.child_by_field_name("left")) is not None
                and left.type == "instance_variable"
                and self.parsed.text(left) == name
            ]
            types = {self._assigned_type(a) for a in assigns}
            self._ivars[key] = types.pop() if len(types) == 1 else None
        return self._ivars[key]

    def helper_type(self, name: str, node: Node) -> RType | None:
        klass = enclosing_class(node)
        if klass is None or not name:
            return None
        scope = scope_of(node)
        table = self.singleton_helpers(klass) if scope.type == "singleton_method" else self.class_methods(klass)
        method = table.get(name)
        if method is None or method.id == scope.id:
            return None
        body = method.child_by_field_name("body")
        last = _last_expression(body) if body is not None and body.type == "body_statement" else body
        return self.type_of(last) if last is not None else None

    def singleton_helpers(self, klass: Node) -> dict[str, Node]:
        """`def self.x` methods of a class or module body: what a bare call inside another `def self.y` reaches."""
        key = -klass.id - 1
        if key not in self._methods:
            found: dict[str, Node] = {}
            for node in _walk_scope(klass, descend_methods=False):
                obj = node.child_by_field_name("object") if node.type == "singleton_method" else None
                if obj is not None and obj.type == "self" and (name := node.child_by_field_name("name")) is not None:
                    found.setdefault(self.parsed.text(name), node)
            self._methods[key] = found
        return self._methods[key]

    def class_methods(self, klass: Node) -> dict[str, Node]:
        """Instance methods defined directly in a class body (`private def x` included)."""
        if klass.id not in self._methods:
            found: dict[str, Node] = {}
            for node in _walk_scope(klass, descend_methods=False):
                if node.type == "method" and (name := node.child_by_field_name("name")) is not None:
                    found.setdefault(self.parsed.text(name), node)
            self._methods[klass.id] = found
        return self._methods[klass.id]


def scope_of(node: Node) -> Node:
    current = node.parent
    while current is not None:
        if current.type in SCOPES:
            return current
        if current.parent is None:
            return current
        current = current.parent
    return node


def enclosing_class(node: Node) -> Node | None:
    return enclosing(node, *CLASS_SCOPES)


def _walk_scope(scope: Node, *, descend_methods: bool) -> list[Node]:
    """Nodes of a scope's own body: nested classes never entered, nested methods only if asked
    (the nested `method` node itself is always included)."""
    out: list[Node] = []
    stack = list(reversed(scope.children))
    while stack:
        node = stack.pop()
        out.append(node)
        if node.type in CLASS_SCOPES or node.type == "singleton_class":
            continue
        if node.type in ("method", "singleton_method") and not descend_methods:
            continue
        stack.extend(reversed(node.children))
    return out


def _is_conditional(assign: Node, read: Node, scope: Node) -> bool:
    if assign.type == "operator_assignment":
        return True
    read_ancestors: set[int] = set()
    current = read.parent
    while current is not None and current.id != scope.id:
        read_ancestors.add(current.id)
        current = current.parent
    current = assign.parent
    while current is not None and current.id != scope.id:
        if current.type in CONDITIONAL and current.id not in read_ancestors:
            return True
        current = current.parent
    return False


CALL_METHODS = frozenset({"call", "()", "[]", "yield", "==="})
UNTYPED_CALLABLE = "(injected callable)"  # a constructor parameter with no default that no file fills
UNTYPED_RESULT = "(result of an injected callable)"
SELF_YIELDING = frozenset({"tap", "then", "yield_self"})


def _is_proc_literal(parsed: ParsedSource, node: Node) -> bool:
    """`proc { }`, `lambda { }`, `Proc.new { }`, `method(:name)` is not one (no body here)."""
    method = node.child_by_field_name("method")
    recv = node.child_by_field_name("receiver")
    name = parsed.text(method) if method is not None else ""
    has_block = node.child_by_field_name("block") is not None
    if recv is None:
        return has_block and name in ("proc", "lambda")
    return has_block and name == "new" and parsed.text(recv) == "Proc"


def _last_expression(node: Node) -> Node | None:
    children = [c for c in node.named_children if c.type not in ("comment", "rescue", "ensure", "else")]
    return children[-1] if children else None


def _param_names(parsed: ParsedSource, scope: Node) -> set[str]:
    if scope.type not in ("method", "singleton_method"):
        return set()
    params = scope.child_by_field_name("parameters")
    if params is None:
        return set()
    names: set[str] = set()
    for child in params.named_children:
        name = child if child.type == "identifier" else child.child_by_field_name("name")
        if name is not None:
            names.add(parsed.text(name))
    return names


def _param_default(parsed: ParsedSource, scope: Node, name: str) -> Node | None:
    """The default value of parameter `name` (`llm: RubyLLM`, `chat = RubyLLM.chat`): the production
    path of an injected dependency, so calls on the parameter are verified against the default's type."""
    params = scope.child_by_field_name("parameters")
    if params is None:
        return None
    for child in params.named_children:
        if child.type in ("optional_parameter", "keyword_parameter"):
            pname = child.child_by_field_name("name")
            if pname is not None and parsed.text(pname) == name:
                return child.child_by_field_name("value")
    return None


def _block_param_names(parsed: ParsedSource, params: Node) -> list[str]:
    names: list[str] = []
    for child in params.named_children:
        name = child if child.type == "identifier" else child.child_by_field_name("name")
        names.append(parsed.text(name) if name is not None else "")
    return names
