"""ActiveRecord models that use a gem's Rails macros (`acts_as_chat`, `acts_as_message`, ...).

A project class whose body calls a class method of the gem that includes modules into its caller
(`MethodDef.mixes_in`, read from the gem's source) is a *record*: its instances answer the methods of
those modules, plus the names the macro generates (`MethodDef.adds`: associations, define_method,
delegate). ruby_llm ships two variants of each macro (ActsAs and ActsAsLegacy, chosen by
`config.use_new_acts_as`); the project's own setting picks one, and a macro only the new variant has
(`acts_as_model`) means the new one.
Invariants: a record is only modelled with a gem index in hand; any other method of a record
(ActiveRecord's, the app's own) is not a gem call and is never reported; a method the gem defines
privately is `unverifiable` from outside (the app may define its own), never `missing`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shipbench.audit.ruby.api_model import Location, MethodDef
from shipbench.audit.ruby.infer_model import KNOWN_BLOCK_PARAMS, KNOWN_RETURNS, RType, parse_known, relative
from shipbench.audit.ruby.parse import Node, ParsedSource, walk
from shipbench.audit.ruby.resolve_api import GemApi

_NEW_ACTS_AS = re.compile(rb"use_new_acts_as\s*=\s*true")
# ActiveRecord class methods that give one record of the class.
RECORD_FINDERS = frozenset(
    {
        *("new", "create", "create!", "find", "find_by", "find_by!", "first", "first!", "last", "last!"),
        *("take", "take!", "sole", "find_sole_by", "find_or_create_by", "find_or_create_by!"),
        *("find_or_initialize_by", "create_or_find_by", "create_or_find_by!"),
    }
)


@dataclass(frozen=True)
class Macro:
    """One variant of a macro as the gem defines it."""

    owner: str  # RubyLLM::ActiveRecord::ActsAs
    method: MethodDef


@dataclass
class Record:
    """A project class that called a gem macro."""

    name: str  # the project's class, "Chat"
    api: GemApi
    macro: str  # "acts_as_chat"
    variants: list[Macro]  # the chosen one first
    given: dict[str, str] = field(default_factory=dict)  # keyword arguments given as literal symbols

    @property
    def chosen(self) -> Macro:
        return self.variants[0]

    @property
    def mixins(self) -> list[str]:
        return list(self.chosen.method.mixes_in)

    def generated(self) -> dict[str, Location | None]:
        """Instance methods the macro generates for this class (association names with the given keywords)."""
        out: dict[str, Location | None] = {}
        for raw in self.chosen.method.adds:
            name = raw
            if raw.startswith("{") and raw.endswith("}"):
                keyword, _, default = raw[1:-1].partition("=")
                name = self.given.get(keyword, default)
            out[name] = self.chosen.method.location
        return out


def macros_of(api: GemApi) -> dict[str, list[Macro]]:
    """Every class-level macro of the gem that mixes modules into its caller, by name."""
    found: dict[str, list[Macro]] = {}
    if api.index is None:
        return found
    for cls in api.index.classes.values():
        for name, md in cls.singleton_methods.items():
            if md.mixes_in and md.visibility == "public":
                found.setdefault(name, []).append(Macro(cls.name, md))
    return found


def prefers_new_variant(sources: list[ParsedSource]) -> bool:
    return any(_NEW_ACTS_AS.search(p.source) for p in sources)


def find_records(
    parsed: ParsedSource, api: GemApi, macros: dict[str, list[Macro]], prefer_new: bool
) -> list[tuple[str, Record]]:
    """(class name, record) for each class of the file whose own body calls one of `macros`."""
    out: list[tuple[str, Record]] = []
    for node in walk(parsed.root):
        if node.type != "class" or node.child_by_field_name("name") is None:
            continue
        body = node.child_by_field_name("body")
        for stmt in body.named_children if body is not None else []:
            call = _bare_call(parsed, stmt)
            if call is None or call[0] not in macros:
                continue
            candidates = macros[call[0]]
            variants = _order(candidates, prefer_new or (len(candidates) == 1 and _is_new(candidates[0])))
            name = qualified_name(parsed, node)
            out.append((name, Record(name=name, api=api, macro=call[0], variants=variants, given=call[1])))
            break
    return out


def qualified_name(parsed: ParsedSource, node: Node) -> str:
    """`module RubyLLM; class Foo` -> 'RubyLLM::Foo' (lexical nesting joined)."""
    parts: list[str] = []
    current: Node | None = node
    while current is not None:
        if current.type in ("class", "module") and (name := current.child_by_field_name("name")) is not None:
            parts.append(parsed.text(name).lstrip(":"))
        current = current.parent
    return "::".join(reversed(parts))


def _is_new(macro: Macro) -> bool:
    return not macro.owner.endswith("Legacy")


def _order(variants: list[Macro], prefer_new: bool) -> list[Macro]:
    """The variant config.use_new_acts_as selects first (legacy is the gem's default)."""
    return sorted(variants, key=lambda m: (_is_new(m) != prefer_new, m.owner))


def _bare_call(parsed: ParsedSource, stmt: Node) -> tuple[str, dict[str, str]] | None:
    """`acts_as_chat` / `acts_as_chat messages: :entries` -> (name, literal symbol keywords)."""
    if stmt.type == "identifier":
        return parsed.text(stmt), {}
    if stmt.type != "call" or stmt.child_by_field_name("receiver") is not None:
        return None
    meth = stmt.child_by_field_name("method")
    if meth is None:
        return None
    given: dict[str, str] = {}
    args = stmt.child_by_field_name("arguments")
    for pair in args.named_children if args is not None else []:
        key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
        if pair.type == "pair" and key is not None and value is not None and value.type == "simple_symbol":
            given[parsed.text(key).rstrip(":").lstrip(":")] = parsed.text(value)[1:]
    return parsed.text(meth), given


RECORD_KINDS = frozenset({"record", "record_class"})


def record_lookup(record: Record, method: str, singleton: bool) -> tuple[MethodDef, str] | None:
    """The gem's definition of `method` on this record (instance side: the mixed-in modules; class side:
    their `class_methods`), with its owner; None when the gem does not define it (ActiveRecord, the app)."""
    api = record.api
    for mixin in record.mixins:
        found = api.lookup(mixin, method, singleton)
        if found.method is not None and found.owner is not None and api.find_class(found.owner) is not None:
            return found.method, found.owner
    return None


def record_result(record: Record, rtype: RType, method: str) -> RType | None:
    """`Chat.find(id)` -> a Chat record; `chat.with_instructions(...)` -> the record (returns self);
    `chat.ask(...)` -> the library's Message (documented facts keyed by the mixin)."""
    if rtype.kind == "record_class":
        return RType("record", record.name) if method in RECORD_FINDERS else None
    found = record_lookup(record, method, False)
    if found is None:
        return None
    md, owner = found
    api = record.api
    known = KNOWN_RETURNS.get(api.gem, {}).get((relative(owner, api.namespace), method, False))
    if known is not None:
        return parse_known(known, api.namespace)
    return rtype if md.returns_self else None


def record_block_param(record: Record, rtype: RType, method: str, position: int) -> RType | None:
    if rtype.kind != "record" or position != 0:
        return None
    found = record_lookup(record, method, False)
    if found is None:
        return None
    api = record.api
    known = KNOWN_BLOCK_PARAMS.get(api.gem, {}).get((relative(found[1], api.namespace), method, False))
    return parse_known(known, api.namespace) if known is not None else None
