"""Which rescues cover a call: enclosing begin/rescue, method-level and block-level rescue clauses,
`x rescue y` modifiers, then the visible callers of its method, then `rescue_from` in the controller
(or ApplicationController) that reaches it.

Invariants: a rescue covers an LLM failure only if it is bare, names StandardError/Exception, an
HTTP/RubyLLM error, or an error class the project defines; caller search is bounded (depth, visited
set) and only follows call sites that plausibly reach the method (same class, or a receiver naming it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import (
    app_ruby,
    call_arguments,
    class_name,
    def_name,
    enclosing_class,
    enclosing_method,
    is_controller,
    method_name,
)

UNTYPED = frozenset({"StandardError", "Exception"})
NETWORK_PREFIXES = ("RubyLLM::", "Faraday::", "Net::", "Errno::", "OpenSSL::", "HTTParty::", "RestClient::")
NETWORK_NAMES = frozenset({"Timeout::Error", "SocketError", "IOError"})
MAX_DEPTH = 4
HANDLER_TYPES = ("rescue", "else", "ensure")
SPLAT = "*"  # prefix of a rescued list whose classes are not known


@dataclass(frozen=True)
class Rescue:
    """One handler: a rescue clause, a rescue modifier or a rescue_from declaration."""

    parsed: ParsedSource
    node: Node
    classes: tuple[str, ...]  # () for a bare rescue
    body: Node | None
    kind: str  # "clause" | "modifier" | "rescue_from"


@dataclass
class Coverage:
    rescues: list[Rescue] = field(default_factory=list)
    callers: list[tuple[ParsedSource, Node]] = field(default_factory=list)  # caller methods on the way


def rescue_index(ctx: AuditContext) -> RescueIndex:
    """The context's RescueIndex, built once."""
    cached = ctx.memo.get("rescue_index")
    if isinstance(cached, RescueIndex):
        return cached
    index = RescueIndex(ctx)
    ctx.memo["rescue_index"] = index
    return index


class RescueIndex:
    """Project-wide lookups for rescue coverage: app error classes, methods, call sites, rescue_from."""

    def __init__(self, ctx: AuditContext) -> None:
        self.sources = app_ruby(ctx)
        self.app_errors = _app_error_classes(self.sources)
        self.methods: dict[str, list[tuple[ParsedSource, Node]]] = {}
        for parsed in self.sources:
            for node in of_type(parsed.root, "method", "singleton_method"):
                self.methods.setdefault(def_name(parsed, node), []).append((parsed, node))
        self.app_controller = next(
            (p for p in self.sources if p.rel.endswith("app/controllers/application_controller.rb")), None
        )

    # ---- classification

    def covers(self, rescue: Rescue) -> bool:
        return not rescue.classes or any(self.kind_of(c) != "unrelated" for c in rescue.classes)

    def kind_of(self, name: str) -> str:
        """'untyped' | 'typed' | 'unrelated' for one rescued class name."""
        name = name.lstrip(":")
        if name in UNTYPED:
            return "untyped"
        if name.startswith(NETWORK_PREFIXES) or name in NETWORK_NAMES or name == "RubyLLM" or name.startswith(SPLAT):
            return "typed"
        return "typed" if name.rsplit("::", 1)[-1] in self.app_errors else "unrelated"

    # ---- coverage

    def coverage(self, parsed: ParsedSource, node: Node) -> Coverage:
        result = Coverage()
        self._cover(parsed, node, result, depth=0, seen=set())
        return result

    def _cover(self, parsed: ParsedSource, node: Node, out: Coverage, depth: int, seen: set[tuple[str, int]]) -> None:
        local = [r for r in local_rescues(parsed, node) if self.covers(r)]
        local += [r for r in self.rescue_froms(parsed, node) if self.covers(r)]
        if local:
            out.rescues.extend(local)
            return
        method = enclosing_method(node)
        if method is None or depth >= MAX_DEPTH or (parsed.rel, method.start_byte) in seen:
            return
        seen.add((parsed.rel, method.start_byte))
        for caller_parsed, site in self.call_sites(parsed, method):
            caller_method = enclosing_method(site)
            if caller_method is not None:
                out.callers.append((caller_parsed, caller_method))
            self._cover(caller_parsed, site, out, depth + 1, seen)

    def call_sites(self, parsed: ParsedSource, method: Node) -> list[tuple[ParsedSource, Node]]:
        """Calls that may reach `method`: same class without receiver, or a receiver naming its class."""
        name = def_name(parsed, method)
        owner = enclosing_class(method)
        klass = class_name(parsed, owner).rsplit("::", 1)[-1] if owner is not None else ""
        unique = len(self.methods.get(name, [])) == 1
        found: list[tuple[ParsedSource, Node]] = []
        for other in self.sources:
            for node in of_type(other.root, "call", "identifier"):
                if node == method.child_by_field_name("name") or not _named(other, node, name):
                    continue
                if _reaches(other, node, parsed, owner, klass, unique):
                    found.append((other, node))
        return found

    def rescue_froms(self, parsed: ParsedSource, node: Node) -> list[Rescue]:
        """rescue_from declared in the controller holding `node`, in ApplicationController, or in a
        concern either of them includes."""
        if not is_controller(parsed):
            return []
        holders = [parsed]
        if self.app_controller is not None and self.app_controller.rel != parsed.rel:
            holders.append(self.app_controller)
        holders += [c for h in list(holders) for c in self._included(h) if c.rel not in {x.rel for x in holders}]
        return [r for h in holders for r in _rescue_froms_in(h, self)]

    def _included(self, parsed: ParsedSource) -> list[ParsedSource]:
        """Files defining the modules a controller includes (`include AssistantFailures`)."""
        names = {
            parsed.text(a).lstrip(":").rsplit("::", 1)[-1]
            for c in of_type(parsed.root, "call")
            if method_name(parsed, c) == "include" and c.child_by_field_name("receiver") is None
            for a in call_arguments(c)
            if a.type in ("constant", "scope_resolution")
        }
        return [
            p
            for p in self.sources
            if any(class_name(p, m).rsplit("::", 1)[-1] in names for m in of_type(p.root, "module"))
        ]


def _named(parsed: ParsedSource, node: Node, name: str) -> bool:
    if node.type == "identifier":
        parent = node.parent
        is_plain = parent is None or parent.type not in ("call", "method", "singleton_method", "assignment")
        return is_plain and parsed.text(node) == name
    return method_name(parsed, node) == name


def _reaches(
    parsed: ParsedSource, site: Node, def_parsed: ParsedSource, owner: Node | None, klass: str, unique: bool
) -> bool:
    recv = site.child_by_field_name("receiver") if site.type == "call" else None
    if recv is None or parsed.text(recv) == "self":
        site_owner = enclosing_class(site)
        return parsed.rel == def_parsed.rel and site_owner is not None and site_owner == owner
    text = parsed.text(recv)
    if klass and klass in text:
        return True
    if recv.type in ("identifier", "instance_variable") and klass and _assigned_from(parsed, text, klass):
        return True
    return unique and recv.type not in ("constant", "scope_resolution")


def _assigned_from(parsed: ParsedSource, var: str, klass: str) -> bool:
    for node in of_type(parsed.root, "assignment", "operator_assignment"):
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is not None and right is not None and parsed.text(left) == var and klass in parsed.text(right):
            return True
    return False


def local_rescues(parsed: ParsedSource, node: Node) -> list[Rescue]:
    """Rescue clauses and modifiers around `node`, up to and including its method."""
    found: list[Rescue] = []
    child, current = node, node.parent
    while current is not None:
        if current.type == "rescue_modifier" and current.child_by_field_name("body") == child:
            found.append(Rescue(parsed, current, (), current.child_by_field_name("handler"), "modifier"))
        elif current.type in ("begin", "body_statement") and child.type not in HANDLER_TYPES:
            found.extend(_clause(parsed, c) for c in current.children if c.type == "rescue")
        if current.type in ("method", "singleton_method", "class", "module"):
            break
        child, current = current, current.parent
    return found


def _clause(parsed: ParsedSource, rescue: Node) -> Rescue:
    exceptions = rescue.child_by_field_name("exceptions")
    classes = tuple(n for c in exceptions.named_children for n in _rescued_names(parsed, c)) if exceptions else ()
    body = rescue.child_by_field_name("body") or next((c for c in rescue.named_children if c.type == "then"), None)
    return Rescue(parsed, rescue, classes, body, "clause")


def _rescued_names(parsed: ParsedSource, node: Node) -> tuple[str, ...]:
    """`rescue *ERRORS` names the classes of a constant array literal of the same file; an unknown
    list stays `*ERRORS` (SPLAT), which the coverage rules read as catching (benefit of the doubt)."""
    if node.type != "splat_argument":
        return (parsed.text(node),)
    inner = node.named_children[0] if node.named_children else None
    if inner is not None and inner.type == "array":
        return tuple(parsed.text(c) for c in inner.named_children)
    name = parsed.text(inner) if inner is not None else ""
    for assign in of_type(parsed.root, "assignment"):
        left, right = assign.child_by_field_name("left"), assign.child_by_field_name("right")
        if left is not None and parsed.text(left) == name and right is not None:
            if right.type == "call" and method_name(parsed, right) == "freeze":
                right = right.child_by_field_name("receiver") or right
            if right.type == "array":
                return tuple(parsed.text(c) for c in right.named_children)
    return (SPLAT + name,)


def _rescue_froms_in(parsed: ParsedSource, index: RescueIndex) -> list[Rescue]:
    found: list[Rescue] = []
    for call in of_type(parsed.root, "call"):
        if method_name(parsed, call) != "rescue_from" or call.child_by_field_name("receiver") is not None:
            continue
        args = call.child_by_field_name("arguments")
        named = list(args.named_children) if args is not None else []
        classes = tuple(parsed.text(a) for a in named if a.type in ("constant", "scope_resolution"))
        body: Node | None = None
        block = call.child_by_field_name("block")
        if block is not None:
            body = block.child_by_field_name("body")
        for pair in (a for a in named if a.type == "pair"):
            value = pair.child_by_field_name("value")
            if value is not None and parsed.text(pair).startswith("with"):
                body = _handler_body(parsed, parsed.text(value).lstrip(":").strip("\"'"), index) or body
        found.append(Rescue(parsed, call, classes, body, "rescue_from"))
    return found


def _handler_body(parsed: ParsedSource, name: str, index: RescueIndex) -> Node | None:
    for def_parsed, method in index.methods.get(name, []):
        if def_parsed.rel == parsed.rel or is_controller(def_parsed) or "/controllers/" in f"/{def_parsed.rel}":
            return method.child_by_field_name("body")
    return None


ROOT_ERRORS = frozenset({"StandardError", "Exception", "RuntimeError", "ScriptError", "ArgumentError", "IOError"})


def _app_error_classes(sources: list[ParsedSource]) -> set[str]:
    """Classes the project defines as exceptions, by inheritance: `class X < StandardError`, a class
    under a library's error (`RubyLLM::Error`, `Faraday::Error`, or a constant the project does not define
    whose name says Error/Exception), `X = Class.new(SomeError)`, and to a fixed point any class whose
    superclass is one of these (`class Timeout < Base` with `Base < StandardError`)."""
    parents: dict[str, str] = {}
    for parsed in sources:
        for klass in of_type(parsed.root, "class"):
            superclass = klass.child_by_field_name("superclass")
            if superclass is not None:
                parents[class_name(parsed, klass).rsplit("::", 1)[-1]] = parsed.text(superclass).lstrip("< :")
        for node in of_type(parsed.root, "assignment"):
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if left is not None and right is not None and left.type == "constant":
                text = parsed.text(right)
                if text.startswith("Class.new(") and text.endswith(")"):
                    parents[parsed.text(left)] = text[len("Class.new(") : -1].strip().lstrip(":")
    names: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, parent in parents.items():
            leaf = parent.rsplit("::", 1)[-1]
            # a parent the project does not define is another library's: its name is all there is to read
            foreign = leaf not in parents and leaf.endswith(("Error", "Exception"))
            is_error = parent in ROOT_ERRORS or parent.startswith(NETWORK_PREFIXES) or leaf in names or foreign
            if is_error and name not in names:
                names.add(name)
                changed = True
    return names
