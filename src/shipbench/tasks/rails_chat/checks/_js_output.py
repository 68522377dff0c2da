"""JavaScript HTML sinks for the rails-chat XSS check: innerHTML/outerHTML writes, insertAdjacentHTML,
document.write.

Invariants: a sink fed only fixed strings (literals, template strings without `${}`, or whose every
substitution goes through an escaping function) is safe; anything else reaching a sink (a variable, a
response field, a template with raw substitutions) is reported once per sink node. A function escapes
by what it does, never by its name: it replaces `<` with `&lt;`, round-trips text through
`textContent`/`innerHTML`, or calls a sanitizer package (DOMPurify, sanitize-html, escape-html, he,
lodash's escape) or another escaping function; a response field counts as escaped when every JSON
render of that key in the app's Ruby escapes it (`safe_fields`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.ruby.parse import Node, ParsedSource, of_type

HTML_PROPERTIES = frozenset({"innerHTML", "outerHTML"})
HTML_METHODS = {"insertAdjacentHTML": 1, "write": 0, "writeln": 0}  # method -> index of the HTML argument
SANITIZER_PACKAGES = frozenset(
    {"dompurify", "isomorphic-dompurify", "sanitize-html", "escape-html", "he", "lodash/escape", "xss"}
)
SANITIZER_METHODS = frozenset({"sanitize", "escape", "encode", "escapeHTML"})  # on an imported sanitizer object
LIBRARY_OBJECTS = frozenset({"DOMPurify", "_", "he"})  # globals the sanitizer packages install
ENTITY_RE = re.compile(r"&lt;|&#0*60;|&#x0*3c;", re.IGNORECASE)


@dataclass(frozen=True)
class HtmlSink:
    """One place where text is written into the DOM as HTML."""

    node: Node  # the assignment or the call
    label: str  # innerHTML | outerHTML | insertAdjacentHTML | write | writeln
    value: Node | None  # the HTML written (None when the call lacks that argument)


def js_callee(parsed: ParsedSource, call: Node) -> tuple[str, str]:
    """`(object_text, name)` of a call_expression: `fetch(..)` -> ('', 'fetch'), `a.b.c()` -> ('a.b', 'c')."""
    func = call.child_by_field_name("function")
    if func is None:
        return "", ""
    if func.type == "member_expression":
        obj = func.child_by_field_name("object")
        prop = func.child_by_field_name("property")
        return (parsed.text(obj) if obj else "", parsed.text(prop) if prop else "")
    return "", parsed.text(func)


@dataclass(frozen=True)
class Escapers:
    """What escapes HTML in this project's JS: function/method names, sanitizer objects, escaped JSON keys."""

    functions: frozenset[str] = frozenset()
    objects: frozenset[str] = LIBRARY_OBJECTS
    safe_fields: frozenset[str] = frozenset()

    def escapes(self, parsed: ParsedSource, call: Node) -> bool:
        obj, name = js_callee(parsed, call)
        if obj in self.objects and name in SANITIZER_METHODS:
            return True
        return name in self.functions and (obj in ("", "this") or not obj.startswith(("document", "window")))


def _imports(parsed: ParsedSource) -> Iterator[tuple[str, str]]:
    """(local name, package) for each default or named import of a file."""
    for stmt in of_type(parsed.root, "import_statement"):
        source = stmt.child_by_field_name("source")
        package = parsed.text(source).strip("\"'`") if source is not None else ""
        for ident in of_type(stmt, "identifier"):
            yield parsed.text(ident), package


def _function_bodies(parsed: ParsedSource) -> Iterator[tuple[str, Node]]:
    """(name, body) of function declarations, `const f = () => ...`/`function` expressions and methods."""
    for node in of_type(parsed.root, "function_declaration", "method_definition", "variable_declarator", "pair"):
        if node.type == "variable_declarator" or node.type == "pair":
            name_node = node.child_by_field_name("name") or node.child_by_field_name("key")
            value = node.child_by_field_name("value")
            if (
                name_node is None
                or value is None
                or value.type not in ("arrow_function", "function_expression", "function")
            ):
                continue
            body = value.child_by_field_name("body")
        else:
            name_node, body = node.child_by_field_name("name"), node.child_by_field_name("body")
        if name_node is not None and body is not None:
            yield parsed.text(name_node).strip("\"'"), body


def _escapes_itself(parsed: ParsedSource, body: Node) -> bool:
    """Replaces `<` with an entity (given inline, or through a lookup table of the same file), or writes
    the text as textContent/innerText and reads innerHTML back."""
    table = bool(ENTITY_RE.search(parsed.text(parsed.root)))
    for call in of_type(body, "call_expression"):
        if js_callee(parsed, call)[1] in ("replace", "replaceAll"):
            args = call.child_by_field_name("arguments")
            named = [a for a in args.named_children if a.type != "comment"] if args is not None else []
            if args is None or not named:
                continue
            if ENTITY_RE.search(parsed.text(args)):
                return True
            if "<" in parsed.text(named[0]) and len(named) > 1 and named[1].type != "string" and table:
                return True
    props = {parsed.text(p) for p in of_type(body, "property_identifier")}
    return bool(props & {"textContent", "innerText"}) and "innerHTML" in props


def project_escapers(units: list[ParsedSource], safe_fields: frozenset[str] = frozenset()) -> Escapers:
    """The escaping functions of a project's JS, to a fixed point (a wrapper of an escaper escapes)."""
    objects = set(LIBRARY_OBJECTS)
    functions: set[str] = set()
    for parsed in units:
        for local, package in _imports(parsed):
            if package.lower() in SANITIZER_PACKAGES:
                objects.add(local)
                functions.add(local)  # `import escapeHtml from "escape-html"` is itself the function
    bodies = [(p, name, body) for p in units for name, body in _function_bodies(p)]
    for parsed, name, body in bodies:
        if _escapes_itself(parsed, body):
            functions.add(name)
    for _ in range(4):
        current = Escapers(frozenset(functions), frozenset(objects), safe_fields)
        grown = {
            name
            for parsed, name, body in bodies
            if name not in functions and any(current.escapes(parsed, c) for c in of_type(body, "call_expression"))
        }
        if not grown:
            break
        functions |= grown
    return Escapers(frozenset(functions), frozenset(objects), safe_fields)


def _field_key(parsed: ParsedSource, node: Node) -> str:
    """`data.reply_html` / `data["reply_html"]` -> 'reply_html' ('' for anything else)."""
    if node.type == "member_expression":
        prop = node.child_by_field_name("property")
        return parsed.text(prop) if prop is not None else ""
    if node.type == "subscript_expression":
        index = node.child_by_field_name("index")
        return parsed.text(index).strip("\"'`") if index is not None and index.type == "string" else ""
    return ""


def is_fixed_html(parsed: ParsedSource, node: Node, escapers: Escapers | None = None, depth: int = 0) -> bool:
    """True when the value written to a sink cannot carry unescaped data from a response or a user."""
    esc = escapers or Escapers()
    if depth > 6:
        return False  # a cycle of parameters passed around: not proven fixed
    while node.type == "parenthesized_expression" and node.named_child_count == 1:
        node = node.named_children[0]
    if node.type in ("string", "number", "null", "undefined", "true", "false"):
        return True
    if node.type == "template_string":
        subs = [c for c in node.named_children if c.type == "template_substitution"]
        return all(s.named_child_count and is_fixed_html(parsed, s.named_children[0], esc, depth + 1) for s in subs)
    if node.type == "binary_expression":
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        return (
            left is not None
            and right is not None
            and is_fixed_html(parsed, left, esc, depth + 1)
            and is_fixed_html(parsed, right, esc, depth + 1)
        )
    if node.type == "call_expression":
        return esc.escapes(parsed, node) or _fixed_call(parsed, node, esc, depth)
    if node.type == "identifier":
        value = _single_binding(parsed, node)
        if value is not None:
            return is_fixed_html(parsed, value, esc, depth + 1)
        passed = _passed_arguments(parsed, node)
        return bool(passed) and all(is_fixed_html(parsed, a, esc, depth + 1) for a in passed)
    key = _field_key(parsed, node)
    return bool(key) and key in esc.safe_fields


def _fixed_call(parsed: ParsedSource, call: Node, esc: Escapers, depth: int) -> bool:
    """`fixed.replace(re, "<br>")` (literal replacement on fixed markup), or a call of a function of the
    same file whose every returned value is fixed markup (`this.bubble(message)`)."""
    obj_name, name = js_callee(parsed, call)
    func = call.child_by_field_name("function")
    args = call.child_by_field_name("arguments")
    named = [a for a in args.named_children if a.type != "comment"] if args is not None else []
    if name in ("replace", "replaceAll") and func is not None and func.type == "member_expression":
        receiver = func.child_by_field_name("object")
        return (
            receiver is not None
            and len(named) == 2
            and named[1].type in ("string", "template_string")
            and is_fixed_html(parsed, named[1], esc, depth + 1)
            and is_fixed_html(parsed, receiver, esc, depth + 1)
        )
    if obj_name not in ("", "this"):
        return False
    returned = _returned_values(parsed, name)
    return bool(returned) and all(is_fixed_html(parsed, r, esc, depth + 1) for r in returned)


def _returned_values(parsed: ParsedSource, name: str) -> list[Node]:
    """What the one function or method of this file called `name` returns ([] when unknown)."""
    bodies = [body for fname, body in _function_bodies(parsed) if fname == name]
    if len(bodies) != 1:
        return []
    body = bodies[0]
    if body.type != "statement_block":
        return [body]  # an arrow function's expression body
    found: list[Node] = []
    for stmt in of_type(body, "return_statement"):
        owner = stmt.parent
        while owner is not None and owner is not body and owner.type not in FUNCTIONS:
            owner = owner.parent
        if owner is not body:
            continue  # a nested function's return
        value = next((c for c in stmt.named_children if c.type != "comment"), None)
        if value is None:
            return []
        found.append(value)
    return found


FUNCTIONS = ("function_declaration", "method_definition", "function_expression", "arrow_function", "function")


def _passed_arguments(parsed: ParsedSource, ident: Node) -> list[Node]:
    """When `ident` is a parameter of its function or method, what every call of that function in the
    file passes in its place (`this.add("assistant", data.answer_html)` for `add(role, html)`); [] when
    it is not a parameter or a call passes nothing there."""
    owner = ident.parent
    while owner is not None and owner.type not in FUNCTIONS:
        owner = owner.parent
    if owner is None:
        return []
    params = owner.child_by_field_name("parameters")
    names = [parsed.text(p) for p in params.named_children] if params is not None else []
    if parsed.text(ident) not in names:
        return []
    position = names.index(parsed.text(ident))
    name_node = owner.child_by_field_name("name")
    if name_node is None and owner.parent is not None and owner.parent.type == "variable_declarator":
        name_node = owner.parent.child_by_field_name("name")
    if name_node is None:
        return []
    name = parsed.text(name_node)
    found: list[Node] = []
    for call in of_type(parsed.root, "call_expression"):
        obj, called = js_callee(parsed, call)
        if called != name or obj not in ("", "this"):
            continue  # `this.messagesTarget.append(...)` is the DOM's append, not the method `append`
        args = call.child_by_field_name("arguments")
        named = [a for a in args.named_children if a.type != "comment"] if args is not None else []
        if len(named) <= position:
            return []
        found.append(named[position])
    return found


def _single_binding(parsed: ParsedSource, ident: Node) -> Node | None:
    """The value of the one `const/let/var x = value` declaring `ident` before it, with no later `x =`."""
    name = parsed.text(ident)
    values = [
        d.child_by_field_name("value")
        for d in of_type(parsed.root, "variable_declarator")
        if (n := d.child_by_field_name("name")) is not None
        and parsed.text(n) == name
        and d.start_byte < ident.start_byte
    ]
    reassigned = any(
        (left := a.child_by_field_name("left")) is not None and parsed.text(left) == name
        for a in of_type(parsed.root, "assignment_expression", "augmented_assignment_expression")
    )
    return values[0] if len(values) == 1 and not reassigned else None


def html_sinks(parsed: ParsedSource) -> list[HtmlSink]:
    """Every HTML sink of a JS tree, in document order: `x.innerHTML =`/`+=`, `x.outerHTML =`,
    `x.insertAdjacentHTML(pos, html)`, `document.write(html)`/`writeln`."""
    sinks: list[HtmlSink] = []
    for node in of_type(parsed.root, "assignment_expression", "augmented_assignment_expression"):
        left = node.child_by_field_name("left")
        prop = left.child_by_field_name("property") if left is not None and left.type == "member_expression" else None
        if prop is not None and parsed.text(prop) in HTML_PROPERTIES:
            sinks.append(HtmlSink(node, parsed.text(prop), node.child_by_field_name("right")))
    for node in of_type(parsed.root, "call_expression"):
        obj, name = js_callee(parsed, node)
        if name not in HTML_METHODS or (name != "insertAdjacentHTML" and not f"{obj}.".startswith("document.")):
            continue
        args_node = node.child_by_field_name("arguments")
        args = [a for a in args_node.named_children if a.type != "comment"] if args_node is not None else []
        index = HTML_METHODS[name]
        sinks.append(HtmlSink(node, name, args[index] if len(args) > index else None))
    return sorted(sinks, key=lambda s: s.node.start_byte)


def unsafe_js_sinks(parsed: ParsedSource, escapers: Escapers | None = None) -> Iterator[tuple[Node, str]]:
    """(node, message) for each HTML sink in a JS file fed a value that is not fixed or escaped markup."""
    for sink in html_sinks(parsed):
        if sink.value is None or is_fixed_html(parsed, sink.value, escapers):
            continue
        if sink.label in HTML_PROPERTIES:
            yield sink.node, f"{sink.label} is assigned non-constant HTML ({_clip(parsed.text(sink.value))})"
        else:
            yield sink.node, f"{sink.label}() is given non-constant HTML ({_clip(parsed.text(sink.value))})"


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
