"""Evidence of where a rails-chat app keeps its conversation: one `StoreSignal` per store write or
store declaration (session/cookie writes, Rails.cache, DB models, singletons, class-level stores,
browser-side history), plus a file reference graph used to tell which store the LLM code uses.

Invariants: signals come from app code only (app/, lib/, config/, views, app JS), in a stable order
(file path order, then source order); a signal is `conversational` when its key, name or value
names conversation data. Nothing here assigns a kind to the project: persistence.py ranks signals.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, line_of, of_type
from shipbench.tasks.rails_chat.checks._common import (
    app_ruby,
    calls,
    class_name,
    def_name,
    enclosing_class,
    enclosing_method,
    llm_entry_calls,
)
from shipbench.tasks.rails_chat.checks._frontend import (
    js_calls,
    js_fetch_calls,
    js_units,
    view_sources,
)
from shipbench.tasks.rails_chat.checks._js_output import js_callee

SERVER_KINDS = frozenset({"session_cookie", "rails_cache", "database", "singleton", "class_variable"})
CONV_RE = re.compile(r"messag|histor|conversation|chat|transcript|thread|turns|dialog", re.I)
HISTORY_RE = re.compile(r"messages|histor|conversation|transcript|turns|dialog|session", re.I)
"""Receivers that hold a history (for cap detection); singular `message` is the new input, not it."""
_HISTORY_PARAM_RE = re.compile(r"^(?:messages|history|histories|conversation|transcript|turns)$", re.I)
_ID_RE = re.compile(r"(?:^|_)(?:id|ids|key|token|uuid)$", re.I)
_VALUE_CONV_RE = re.compile(r"\brole\b|messages|histor|conversation|transcript", re.I)
_SESSION_RE = re.compile(r"^(?:@?session|request\.session|controller\.session)$")
# the cookie jar itself, or one handed to a store object (`@cookies`, `@cookie_jar`, `request.cookie_jar`)
_COOKIE_RE = re.compile(
    r"^(?:@?cookies|@?cookie_jar|request\.cookie_jar|request\.cookies)(?:\.(?:permanent|encrypted|signed))*$"
)
_APPEND_METHODS = frozenset({"push", "append", "concat", "unshift", "prepend", "insert", "store", "merge!"})
_MUTATORS = _APPEND_METHODS | {
    "delete",
    "clear",
    "[]=",
    "update",
    "fetch",
    "compute_if_absent",
    "put_if_absent",
}
_COLLECTION_CLASSES = frozenset(
    {"Hash", "Array", "Set", "Concurrent::Hash", "Concurrent::Map", "Concurrent::Array", "ThreadSafe::Cache"}
)
_SPECIAL_GLOBALS = frozenset({"$stdout", "$stderr", "$stdin", "$PROGRAM_NAME", "$VERBOSE", "$DEBUG", "$LOAD_PATH"})
_ASSIGNMENTS = ("assignment", "operator_assignment")
_RECORD_BASES = frozenset({"ApplicationRecord", "ActiveRecord::Base"})


@dataclass(frozen=True)
class StoreSignal:
    kind: str
    parsed: ParsedSource
    line: int  # 1-based line of the write or declaration
    conversational: bool
    name: str = ""  # session key, store variable, class name
    container: str = ""  # "session" | "cookies" for session_cookie signals

    @property
    def rel(self) -> str:
        return self.parsed.rel


def session_key(name: str) -> str:
    return name.strip(":'\"")


def _unwrap(node: Node | None) -> Node | None:
    """The stored value of `a = b ||= {}` chains and parenthesised values."""
    while node is not None and node.type in (*_ASSIGNMENTS, "parenthesized_statements"):
        node = node.child_by_field_name("right") if node.type in _ASSIGNMENTS else node.named_child(0)
    return node


def is_store_value(parsed: ParsedSource, node: Node | None) -> bool:
    """An empty collection, a collection constructor, or a RubyLLM chat object."""
    node = _unwrap(node)
    if node is None:
        return False
    if node.type in ("hash", "array"):
        return node.named_child_count == 0
    if node.type != "call":
        return False
    recv = node.child_by_field_name("receiver")
    method = node.child_by_field_name("method")
    if recv is not None and method is not None and parsed.text(method) == "new":
        return parsed.text(recv).lstrip(":") in _COLLECTION_CLASSES
    return any(site.node == node for site in llm_entry_calls(parsed))


# ---------------------------------------------------------------- session / cookies


def _container(parsed: ParsedSource, ref: Node, aliases: dict[str, str] | None = None) -> str:
    obj = ref.child_by_field_name("object")
    text = parsed.text(obj) if obj is not None else ""
    return _container_of(text) or (aliases or {}).get(text, "")


def _container_of(text: str) -> str:
    if text.lstrip(":") == "Rails.cache":
        return "cache"
    if _SESSION_RE.match(text):
        return "session"
    return "cookies" if _COOKIE_RE.match(text) else ""


def _superclasses(sources: list[ParsedSource]) -> dict[str, str]:
    """Class (last name) -> its superclass (last name), across the project."""
    out: dict[str, str] = {}
    for parsed in sources:
        for klass in of_type(parsed.root, "class"):
            sup = klass.child_by_field_name("superclass")
            if sup is not None and klass.is_named:
                out[class_name(parsed, klass).rsplit("::", 1)[-1]] = (
                    parsed.text(sup).lstrip("<").strip().rsplit("::", 1)[-1]
                )
    return out


def _handed_stores(sources: list[ParsedSource]) -> dict[tuple[str, int | str], str]:
    """(class, argument position or keyword) -> container, for each `K.new(session | cookies | Rails.cache)`."""
    handed: dict[tuple[str, int | str], str] = {}
    for parsed in sources:
        for node in of_type(parsed.root, "call"):
            recv = node.child_by_field_name("receiver")
            method = node.child_by_field_name("method")
            args = node.child_by_field_name("arguments")
            if recv is None or method is None or args is None or parsed.text(method) != "new":
                continue
            klass = parsed.text(recv).lstrip(":").rsplit("::", 1)[-1]
            for pos, arg in enumerate(a for a in args.named_children if a.type != "pair"):
                if container := _container_of(parsed.text(arg)):
                    handed[(klass, pos)] = container
            for pair in (a for a in args.named_children if a.type == "pair"):
                key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
                if key is not None and value is not None and (container := _container_of(parsed.text(value))):
                    handed[(klass, parsed.text(key).strip(":"))] = container
    return handed


def store_aliases(sources: list[ParsedSource]) -> dict[str, dict[str, str]]:
    """Per file, the names that hold the session, the cookie jar or Rails.cache under another name: a
    variable assigned from it, a parameter defaulting to it, or a constructor parameter of a class that
    some file instantiates with it (`ConversationStore.new(session)`, `Memory.new(cache: Rails.cache)`,
    also through a subclass that inherits the constructor), and the instance variables those are stored into."""
    handed = _handed_stores(sources)
    parents = _superclasses(sources)
    own_init: set[str] = set()
    for parsed in sources:
        for method in of_type(parsed.root, "method"):
            owner = enclosing_class(method)
            if owner is not None and def_name(parsed, method) == "initialize":
                own_init.add(class_name(parsed, owner).rsplit("::", 1)[-1])
    heirs: dict[str, set[str]] = {}  # class with a constructor -> the classes built through it
    for klass in set(parents) | {k for k, _ in handed}:
        current, seen = klass, set()
        while current and current not in seen:
            seen.add(current)
            if current in own_init:
                heirs.setdefault(current, set()).add(klass)
                break
            current = parents.get(current, "")
    out: dict[str, dict[str, str]] = {}
    for parsed in sources:
        names: dict[str, str] = {}
        for method in of_type(parsed.root, "method"):
            params = method.child_by_field_name("parameters")
            owner = enclosing_class(method)
            if params is None or def_name(parsed, method) != "initialize" or owner is None:
                continue
            klass = class_name(parsed, owner).rsplit("::", 1)[-1]
            users = heirs.get(klass, {klass})
            positional = [p for p in params.named_children if p.type in ("identifier", "optional_parameter")]
            for pos, param in enumerate(positional):
                pname = param.child_by_field_name("name") if param.type == "optional_parameter" else param
                found = next((handed[(u, pos)] for u in users if (u, pos) in handed), "")
                if pname is not None and found:
                    names[parsed.text(pname)] = found
            for param in (p for p in params.named_children if p.type == "keyword_parameter"):
                pname = param.child_by_field_name("name")
                key = parsed.text(pname) if pname is not None else ""
                found = next((handed[(u, key)] for u in users if (u, key) in handed), "")
                if found:
                    names[key] = found
        for node in of_type(parsed.root, "keyword_parameter", "optional_parameter"):
            pname, value = node.child_by_field_name("name"), node.child_by_field_name("value")
            if pname is not None and value is not None and (container := _container_of(parsed.text(value))):
                names[parsed.text(pname)] = container
        for _ in range(2):  # @store = session / @jar = cookie_jar_param / @cache = cache
            for node in of_type(parsed.root, "assignment", "operator_assignment"):
                left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
                if left is None or right is None or left.type not in ("instance_variable", "identifier"):
                    continue
                container = _container_of(parsed.text(right)) or names.get(parsed.text(right), "")
                if container:
                    names[parsed.text(left)] = container
        if names:
            out[parsed.rel] = names
    return out


def _written_ref(parsed: ParsedSource, node: Node) -> tuple[Node, Node | None] | None:
    """(element_reference, value) when `node` writes into `x[k]`: `x[k] = v`, `||=`, `<<`, `x[k].push(v)`."""
    if node.type in _ASSIGNMENTS or (node.type == "binary" and _op(parsed, node) == "<<"):
        left = node.child_by_field_name("left")
        if left is not None and left.type == "element_reference":
            return left, node.child_by_field_name("right")
    if node.type == "call":
        recv = node.child_by_field_name("receiver")
        method = node.child_by_field_name("method")
        appends = method is not None and parsed.text(method) in _APPEND_METHODS
        if recv is not None and recv.type == "element_reference" and appends:
            return recv, node.child_by_field_name("arguments")
    return None


def _feeding_values(parsed: ParsedSource, write: Node, value: Node | None) -> list[Node]:
    """The written value and what feeds it inside the same method: the right-hand sides of the locals it
    reads (`updated = records + [entry]`, `entry = { role: ..., content: ... }`), two levels deep."""
    if value is None:
        return []
    method = enclosing(write, "method", "singleton_method")
    found, frontier = [value], [value]
    for _ in range(2):
        names = {parsed.text(i) for v in frontier for i in of_type(v, "identifier")}
        frontier = [
            right
            for a in (of_type(method, "assignment", "operator_assignment") if method is not None else [])
            if (left := a.child_by_field_name("left")) is not None
            and left.type == "identifier"
            and parsed.text(left) in names
            and (right := a.child_by_field_name("right")) is not None
            and a.start_byte < write.start_byte
        ]
        found += frontier
    return found


def _role_records(parsed: ParsedSource, node: Node) -> bool:
    """A hash literal carrying a chat message's shape: a `role` key beside other keys."""
    for h in of_type(node, "hash"):
        keys = {
            parsed.text(k).strip(":\"'")
            for p in h.named_children
            if p.type == "pair" and (k := p.child_by_field_name("key")) is not None
        }
        if "role" in keys and len(keys) > 1:
            return True
    return False


def _op(parsed: ParsedSource, node: Node) -> str:
    op = node.child_by_field_name("operator")
    return parsed.text(op) if op is not None else ""


def _session_signals(parsed: ParsedSource, aliases: dict[str, str] | None = None) -> Iterator[StoreSignal]:
    for node in of_type(parsed.root, *_ASSIGNMENTS, "binary", "call"):
        written = _written_ref(parsed, node)
        if written is None:
            continue
        ref, value = written
        container = _container(parsed, ref, aliases)
        if container not in ("session", "cookies"):
            continue
        key_node = ref.named_child(1) if ref.named_child_count > 1 else None
        key = session_key(parsed.text(key_node)) if key_node is not None else ""
        conv = bool(CONV_RE.search(key)) and not _ID_RE.search(key)
        conv = conv or (value is not None and bool(_VALUE_CONV_RE.search(parsed.text(value))))
        # A slot named by a constant or a variable (`@session[STORE_KEY] ||= {}`) that holds a
        # collection is a store whatever it is called: it counts when linked to the LLM code.
        named_indirectly = key_node is not None and key_node.type in (
            "constant",
            "scope_resolution",
            "instance_variable",
            "identifier",
        )
        fed = _feeding_values(parsed, node, value)
        holds_collection = is_store_value(parsed, value) or any(
            next(iter(of_type(v, "array", "hash")), None) is not None for v in fed
        )
        conv = conv or any(_role_records(parsed, v) for v in fed)
        if conv or (named_indirectly and holds_collection):
            yield StoreSignal("session_cookie", parsed, line_of(node), conv, key, container)


# ---------------------------------------------------------------- Rails.cache, database


def _cache_signals(parsed: ParsedSource, held: dict[str, str] | None = None) -> Iterator[StoreSignal]:
    mentions_cache = b"Rails.cache" in parsed.source
    aliases = {name for name, container in (held or {}).items() if container == "cache"}
    for site in calls(parsed, "write", "fetch"):
        recv = site.receiver.lstrip(":")
        named_cache = mentions_cache and recv.lower().endswith("cache")
        if recv != "Rails.cache" and recv not in aliases and not named_cache:
            continue
        args = site.node.child_by_field_name("arguments")
        first = args.named_child(0) if args is not None and args.named_child_count else None
        if first is None:
            continue
        key = parsed.text(first)
        literal = first.type in ("simple_symbol", "string") and "#{" not in key
        conv = bool(CONV_RE.search(key))
        if conv or not literal:
            yield StoreSignal("rails_cache", parsed, line_of(site.node), conv, key)


def _database_signals(parsed: ParsedSource) -> Iterator[StoreSignal]:
    for klass in of_type(parsed.root, "class"):
        sup = klass.child_by_field_name("superclass")
        name = class_name(parsed, klass)
        if sup is not None and parsed.text(sup).lstrip("< :") in _RECORD_BASES and name != "ApplicationRecord":
            yield StoreSignal("database", parsed, line_of(klass), bool(CONV_RE.search(name)), name)
    for site in calls(parsed, "acts_as_chat", "acts_as_message"):
        yield StoreSignal("database", parsed, line_of(site.node), True, site.method)
    for site in calls(parsed):
        if site.receiver.lstrip(":") in ("Redis", "Kredis") and site.method in (
            "new",
            "current",
            "list",
            "json",
        ):
            yield StoreSignal("database", parsed, line_of(site.node), bool(CONV_RE.search(parsed.text(site.node))))


# ---------------------------------------------------------------- process-local stores


def _class_holds_store(parsed: ParsedSource, klass: Node | None) -> tuple[bool, bool]:
    """(holds a collection/chat in an ivar, that ivar or the class names conversation data)."""
    if klass is None:
        return False, False
    held = [
        parsed.text(left)
        for node in of_type(klass, *_ASSIGNMENTS)
        if (left := node.child_by_field_name("left")) is not None
        and left.type in ("instance_variable", "class_variable")
        and is_store_value(parsed, node.child_by_field_name("right"))
    ]
    names = " ".join([class_name(parsed, klass), *held])
    return bool(held), bool(CONV_RE.search(names))


def _singleton_signals(parsed: ParsedSource) -> Iterator[StoreSignal]:
    for site in calls(parsed, "include"):
        args = site.node.child_by_field_name("arguments")
        if args is None or parsed.text(args).strip("() ").lstrip(":") != "Singleton":
            continue
        holds, conv = _class_holds_store(parsed, enclosing_class(site.node))
        if holds:
            yield StoreSignal("singleton", parsed, line_of(site.node), conv, "Singleton")
    for node in of_type(parsed.root, *_ASSIGNMENTS):
        left = node.child_by_field_name("left")
        right = node.child_by_field_name("right")
        if left is None or right is None:
            continue
        name = parsed.text(left)
        if left.type == "instance_variable" and name == "@instance" and parsed.text(right) in ("new", "self.new"):
            holds, conv = _class_holds_store(parsed, enclosing_class(node))
            if holds:
                yield StoreSignal("singleton", parsed, line_of(node), conv, name)
        elif left.type == "global_variable" and name not in _SPECIAL_GLOBALS and is_store_value(parsed, right):
            yield StoreSignal("singleton", parsed, line_of(node), _names_conv(parsed, node, name), name)


def _names_conv(parsed: ParsedSource, node: Node, name: str) -> bool:
    klass = enclosing_class(node)
    owner = class_name(parsed, klass) if klass is not None else ""
    return bool(CONV_RE.search(f"{owner} {name}")) or any(
        site.node == _unwrap(node.child_by_field_name("right")) for site in llm_entry_calls(parsed)
    )


def _class_level(node: Node) -> bool:
    """Whether code at `node` runs with the class (not an instance) as self (blocks: assume not)."""
    scope = node.parent
    while scope is not None and scope.type not in ("method", "singleton_method", "class", "module"):
        if scope.type in ("block", "do_block", "lambda"):
            return False
        scope = scope.parent
    method = enclosing_method(node)
    if method is None:
        return enclosing_class(node) is not None
    if method.type == "singleton_method":
        return True
    scope = method.parent
    while scope is not None and scope.type not in ("singleton_class", "class", "module"):
        scope = scope.parent
    return scope is not None and scope.type == "singleton_class"


CLASS_STORE_MACROS = frozenset(
    {
        "cattr_accessor", "mattr_accessor", "cattr_writer", "mattr_writer", "cattr_reader", "mattr_reader",
        "class_attribute", "thread_mattr_accessor", "thread_cattr_accessor",
    }
)  # fmt: skip


def _class_store_signals(parsed: ParsedSource) -> Iterator[StoreSignal]:
    for site in calls(parsed, *CLASS_STORE_MACROS):  # `mattr_accessor :threads, default: {}`
        args = site.node.child_by_field_name("arguments")
        default = next(
            (
                p.child_by_field_name("value")
                for p in (args.named_children if args is not None else [])
                if p.type == "pair" and parsed.text(p.child_by_field_name("key") or p).strip(":") == "default"
            ),
            None,
        )
        names = [
            parsed.text(a).lstrip(":")
            for a in (args.named_children if args is not None else [])
            if a.type == "simple_symbol"
        ]
        if default is not None and is_store_value(parsed, default) and names:
            yield StoreSignal(
                "class_variable", parsed, line_of(site.node), _names_conv(parsed, site.node, names[0]), names[0]
            )
    for node in of_type(parsed.root, *_ASSIGNMENTS):
        left = node.child_by_field_name("left")
        if left is None or not is_store_value(parsed, node.child_by_field_name("right")):
            continue
        name = parsed.text(left)
        class_var = left.type == "class_variable"
        class_ivar = left.type == "instance_variable" and name != "@instance" and _class_level(node)
        setter = left.type == "call" and _receiver_is_constant(left)
        if class_var or class_ivar or setter:
            yield StoreSignal("class_variable", parsed, line_of(node), _names_conv(parsed, node, name), name)


def _receiver_is_constant(call: Node) -> bool:
    recv = call.child_by_field_name("receiver")
    return recv is not None and recv.type in ("constant", "scope_resolution")


def _constant_stores(sources: list[ParsedSource]) -> Iterator[StoreSignal]:
    """`STORE = {}` (or Hash.new, Concurrent::Map.new...) that some app code mutates."""
    declared: list[tuple[ParsedSource, Node, str]] = []
    for parsed in sources:
        for node in of_type(parsed.root, "assignment"):
            left = node.child_by_field_name("left")
            if (
                left is not None
                and left.type == "constant"
                and is_store_value(parsed, node.child_by_field_name("right"))
            ):
                declared.append((parsed, node, parsed.text(left)))
    for parsed, node, name in declared:
        if any(_mutates(p, name) for p in sources):
            yield StoreSignal("class_variable", parsed, line_of(node), _names_conv(parsed, node, name), name)


def _mutates(parsed: ParsedSource, name: str) -> bool:
    def names_it(target: Node | None) -> bool:
        if target is None:
            return False
        if target.type == "element_reference":
            target = target.child_by_field_name("object")
        return target is not None and parsed.text(target).split("::")[-1] == name

    for node in of_type(parsed.root, *_ASSIGNMENTS, "binary", "call"):
        written = _written_ref(parsed, node)
        if written is not None and names_it(written[0]):
            return True
        if node.type == "call":
            method = node.child_by_field_name("method")
            mutator = method is not None and parsed.text(method) in _MUTATORS
            if mutator and names_it(node.child_by_field_name("receiver")):
                return True
    return False


# ---------------------------------------------------------------- browser-side history


_STORAGE_OBJECTS = frozenset({"localStorage", "sessionStorage", "window.localStorage", "window.sessionStorage"})
_HIDDEN_RE = re.compile(
    r"""hidden_field(?:_tag)?\s*\(?\s*:?["']?(messages|history|conversation|transcript)\b"""
    r"""|<input[^>]*type=["']hidden["'][^>]*name=["'][^"']*(messages|history|conversation|transcript)""",
    re.I,
)


def _client_js_signals(ctx: AuditContext) -> Iterator[StoreSignal]:
    for unit in js_units(ctx):
        for call in js_calls(unit, "setItem"):
            if js_callee(unit, call)[0] in _STORAGE_OBJECTS and CONV_RE.search(unit.text(call)):
                yield StoreSignal("client_side", unit, line_of(call), True, "localStorage")
        for call in js_fetch_calls(unit):
            args = call.child_by_field_name("arguments")
            if args is not None and _history_in(unit.text(args)):
                yield StoreSignal("client_side", unit, line_of(call), True, "fetch")
        for call in js_calls(unit, "append", "set"):  # FormData / URLSearchParams fields
            args = call.child_by_field_name("arguments")
            first = args.named_child(0) if args is not None and args.named_child_count else None
            field = unit.text(first).strip("'\"`") if first is not None and first.type == "string" else ""
            if _HISTORY_PARAM_RE.match(field):
                yield StoreSignal("client_side", unit, line_of(call), True, "form field")


def _history_in(text: str) -> bool:
    return any(_HISTORY_PARAM_RE.match(word) for word in re.findall(r"[A-Za-z_]+", text))


def _client_view_signals(ctx: AuditContext) -> Iterator[StoreSignal]:
    for view in view_sources(ctx):
        text = view.source.decode("utf-8", "replace")
        match = _HIDDEN_RE.search(text)
        if match:
            line = text.count("\n", 0, match.start()) + 1
            yield StoreSignal("client_side", view, line, True, "hidden field")


def _client_param_signals(parsed: ParsedSource) -> Iterator[StoreSignal]:
    for ref in of_type(parsed.root, "element_reference"):
        obj = ref.child_by_field_name("object")
        key = ref.named_child(1) if ref.named_child_count > 1 else None
        if obj is None or key is None or parsed.text(obj) != "params":
            continue
        if _HISTORY_PARAM_RE.match(session_key(parsed.text(key))):
            yield StoreSignal("client_side", parsed, line_of(ref), True, parsed.text(key))


# ---------------------------------------------------------------- all signals, file graph


def collect_signals(ctx: AuditContext) -> list[StoreSignal]:
    sources = app_ruby(ctx)
    signals: list[StoreSignal] = []
    aliases = store_aliases(sources)
    for parsed in sources:
        signals.extend(_session_signals(parsed, aliases.get(parsed.rel)))
        signals.extend(_cache_signals(parsed, aliases.get(parsed.rel)))
        signals.extend(_database_signals(parsed))
        signals.extend(_singleton_signals(parsed))
        signals.extend(_class_store_signals(parsed))
    signals.extend(_constant_stores(sources))
    signals.extend(_client_js_signals(ctx))
    signals.extend(_client_view_signals(ctx))
    for parsed in sources:
        signals.extend(_client_param_signals(parsed))
    return signals


def _is_namespace_wrapper(node: Node) -> bool:
    """`module Gen` whose body only holds other classes/modules: it defines nothing of its own here."""
    body = node.child_by_field_name("body")
    kept = [c for c in body.named_children if c.type != "comment"] if body is not None else []
    return node.type == "module" and all(c.type in ("class", "module") for c in kept)


def _defined(parsed: ParsedSource) -> set[str]:
    return {
        class_name(parsed, k).split("::")[-1]
        for k in of_type(parsed.root, "class", "module")
        if not _is_namespace_wrapper(k)
    }


def _referenced(parsed: ParsedSource) -> set[str]:
    """Constants the file uses, not the names it gives its own classes and modules."""
    names = {
        (n.start_byte, n.end_byte)
        for k in of_type(parsed.root, "class", "module")
        if (n := k.child_by_field_name("name")) is not None
    }
    return {
        parsed.text(n)
        for n in of_type(parsed.root, "constant")
        if (n.start_byte, n.end_byte) not in names and not _inside_any(n, names)
    }


def _inside_any(node: Node, spans: set[tuple[int, int]]) -> bool:
    """Part of a definition's own name (`class Admin::Chat`: the `Admin` and `Chat` constants)."""
    return any(start <= node.start_byte and node.end_byte <= end for start, end in spans) if spans else False


def file_graph(sources: list[ParsedSource]) -> dict[str, set[str]]:
    """Undirected 'one file references a class or module the other defines' graph over `sources`.
    Linear in the references: definitions are indexed by name, never compared file against file."""
    defined = {p.rel: _defined(p) - {""} for p in sources}
    definers: dict[str, set[str]] = {}
    for rel, names in defined.items():
        for name in names:
            definers.setdefault(name, set()).add(rel)
    graph: dict[str, set[str]] = {p.rel: set() for p in sources}
    outgoing: dict[str, set[str]] = {}
    for parsed in sources:
        targets = {other for ref in _referenced(parsed) for other in definers.get(ref, ())} - {parsed.rel}
        outgoing[parsed.rel] = targets
        for other in targets:
            graph[parsed.rel].add(other)
            graph[other].add(parsed.rel)
    # A subclass calls what its superclass defines (a controller's helper `conversation_store` in
    # ApplicationController): the superclass's own references are the subclass's too (not the files
    # that reference the superclass: those are its other subclasses, not this one's collaborators).
    owner = {name: rel for rel, names in defined.items() for name in names}
    for parsed in sources:
        for klass in of_type(parsed.root, "class"):
            sup = klass.child_by_field_name("superclass")
            base = owner.get(parsed.text(sup).lstrip("< :").rsplit("::", 1)[-1]) if sup is not None else None
            if base is None or base == parsed.rel:
                continue
            for other in outgoing.get(base, set()) - {parsed.rel}:
                graph[parsed.rel].add(other)
                graph[other].add(parsed.rel)
    return graph


def neighbourhood(graph: dict[str, set[str]], start: set[str], distance: int) -> set[str]:
    seen = set(start)
    frontier = set(start)
    for _ in range(distance):
        frontier = {n for f in frontier for n in graph.get(f, set())} - seen
        seen |= frontier
    return seen
