"""Find the calls into verified gems in one parsed file and give each a verdict.

A call is reported when its receiver's inferred type is a gem value (see infer_types), when it is a
constant reference under a gem namespace, or when it is a bare call inside a class that subclasses a
gem class and the gem defines that method. Invariants: "missing" only when the lookup proves absence
(certain) with an index in hand; "bad_arguments" only when resolve_args says Ruby would raise (or drop
the block); Ruby core methods (Object, Enumerable...) and the project's own reopenings of gem classes
are never reported; test-double API (`stub`, `expects`, ...) in tests is left to resolve_fakes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shipbench.audit.models import ApiCall, Definition, Verdict
from shipbench.audit.ruby.api_model import Location, MethodDef
from shipbench.audit.ruby.infer_model import DOUBLE_METHODS, RType, display_call, relative
from shipbench.audit.ruby.infer_types import UNTYPED_RESULT, FileTypes, enclosing_class, scope_of
from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, line_of, walk
from shipbench.audit.ruby.resolve_api import GemApi
from shipbench.audit.ruby.resolve_args import CallArgs, block_ignored, check_args, read_args
from shipbench.audit.ruby.resolve_records import (
    RECORD_KINDS,
    Macro,
    Record,
    find_records,
    qualified_name,
    record_lookup,
)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    detail: str = ""
    suggestions: tuple[str, ...] = ()
    location: Location | None = None


@dataclass
class ProjectDefs:
    """Constants and methods the audited project itself defines inside gem namespaces."""

    constants: set[str] = field(default_factory=set)
    methods: dict[str, set[str]] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)  # project models calling a gem macro
    record_methods: dict[str, set[str]] = field(default_factory=dict)  # what the project defines in them
    test_constants: dict[str, tuple[str, int]] = field(default_factory=dict)  # gem-namespace classes tests invent
    injected: dict[tuple[str, str], tuple[ParsedSource, Node]] = field(default_factory=dict)  # see add_injections

    def add_injections(self, parsed: ParsedSource) -> None:
        """`Klass.new(builder: -> { ... })` / `(builder: method(:build))` in app code: what the constructor's
        keyword receives, so a `@builder.call` inside Klass can be typed from the callable's body."""
        methods = {
            parsed.text(n): m
            for m in walk(parsed.root)
            if m.type == "method" and (n := m.child_by_field_name("name")) is not None
        }
        for node in walk(parsed.root):
            if node.type != "call" or parsed.text(node.child_by_field_name("method") or node) != "new":
                continue
            recv, args = node.child_by_field_name("receiver"), node.child_by_field_name("arguments")
            if recv is None or args is None:
                continue
            klass = parsed.text(recv).lstrip(":").rsplit("::", 1)[-1]
            for pair in (a for a in args.named_children if a.type == "pair"):
                key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
                if key is None or value is None:
                    continue
                target = _callable_node(parsed, value, methods)
                if target is not None:
                    self.injected.setdefault((klass, parsed.text(key).strip(":")), (parsed, target))

    def add_file(self, parsed: ParsedSource, apis: list[GemApi], in_test: bool = False) -> None:
        """Record what `parsed` defines. Test code never makes a constant or method real for the app:
        a class it defines inside a gem namespace that the gem lacks goes to `test_constants` instead."""
        for node in walk(parsed.root):
            if node.type not in ("class", "module"):
                continue
            full = qualified_name(parsed, node)
            owner = next((api for api in apis if api.owns(full)), None)
            if owner is None:
                names = self.record_methods.setdefault(full, set()) if node.type == "class" else set()
                names.update(_defined_names(parsed, node))
                continue
            if in_test:
                if owner.index is not None and full != owner.namespace and owner.find_class(full) is None:
                    self.test_constants.setdefault(full, (parsed.rel, node.start_point[0] + 1))
                continue
            self.constants.add(full)
            self.methods.setdefault(full, set()).update(_defined_names(parsed, node))

    def add_records(self, parsed: ParsedSource, api: GemApi, macros: dict[str, list[Macro]], prefer_new: bool) -> None:
        if macros:
            for name, record in find_records(parsed, api, macros, prefer_new):
                self.records.setdefault(name, record)

    def defines(self, class_name: str, method: str) -> bool:
        return method in self.methods.get(class_name, set())


def _callable_node(parsed: ParsedSource, value: Node, methods: dict[str, Node]) -> Node | None:
    """A lambda/proc literal, or the method `method(:name)` names in the same file."""
    if value.type == "lambda":
        return value
    if value.type != "call":
        return None
    name = parsed.text(value.child_by_field_name("method") or value)
    if name in ("lambda", "proc") and value.child_by_field_name("block") is not None:
        return value
    args = value.child_by_field_name("arguments")
    first = args.named_children[0] if args is not None and args.named_children else None
    if name == "method" and first is not None and first.type == "simple_symbol":
        return methods.get(parsed.text(first).lstrip(":"))
    return None


def _defined_names(parsed: ParsedSource, node: Node) -> set[str]:
    return {
        parsed.text(n)
        for child in walk(node)
        if child.type in ("method", "singleton_method") and (n := child.child_by_field_name("name")) is not None
    }


@dataclass
class FileCalls:
    """Collects the ApiCalls of one file."""

    parsed: ParsedSource
    types: FileTypes
    defs: ProjectDefs
    in_test: bool
    calls: list[ApiCall] = field(default_factory=list)

    def run(self) -> list[ApiCall]:
        for node in walk(self.parsed.root):
            if node.type in ("constant", "scope_resolution"):
                self._constant(node)
            elif node.type == "call":
                self._call(node)
            elif node.type == "identifier" and self.defs.records and _class_statement(node):
                self._self_call(node, self.parsed.text(node))  # a bare `acts_as_chat` in a model body
        return self.calls

    # ---- constants

    def _constant(self, node: Node) -> None:
        parent = node.parent
        if parent is not None and parent.type == "scope_resolution" and parent.child_by_field_name("scope") == node:
            return  # only the whole chain
        if parent is not None and parent.type in ("class", "module") and parent.child_by_field_name("name") == node:
            return  # a definition, not a reference
        name = "".join(self.parsed.text(node).split()).lstrip(":")
        api = self.types.api_for(name)
        if api is None or name == api.namespace or name in self.defs.constants:
            return
        judgement = judge_constant(api, name)
        if judgement.verdict == "missing" and _is_new_receiver(node):
            name += ".new"  # a constructor of an invented class: the contract's `RubyLLM::Client.new`
        self._add(node, name, api, judgement)

    # ---- method calls

    def _call(self, node: Node) -> None:
        method_node = node.child_by_field_name("method")
        if method_node is None:
            return
        method = self.parsed.text(method_node)
        if self.in_test and (method in DOUBLE_METHODS or self._on_a_double(node)):
            return
        recv = node.child_by_field_name("receiver")
        if recv is None or recv.type == "self":
            self._self_call(node, method)
            return
        rtype = self.types.type_of(recv)
        if rtype is None or rtype.kind == "array":
            return
        if rtype.kind == "opaque" and rtype.name == UNTYPED_RESULT:
            self._on_untyped_injection(node, method)
            return
        if rtype.kind in RECORD_KINDS:
            self._record_call(node, rtype, method)
            return
        api = self.types.api_for(rtype.name)
        if api is None:
            return
        if rtype.kind == "opaque" and _rooted_in_missing(api, rtype.name):
            self._on_missing_class(node, rtype, method, api)
            return  # beyond a direct instance, calls on a missing API's result say nothing more
        writer = _is_attribute_write(node)
        name = method + "=" if writer else method
        if rtype.kind != "opaque" and self.defs.defines(rtype.name, name):
            return
        args = CallArgs(positional=1) if writer else read_args(self.parsed, node)
        judgement = judge_method(api, rtype, name, args)
        if judgement is not None:
            self._add(node, display_call(rtype, name, api.namespace), api, judgement)

    def _on_untyped_injection(self, node: Node, method: str) -> None:
        """`@chat_builder.call.with_instructionz(...)` where nothing says what the callable builds (no
        default, no caller passes one): reported as unverifiable (and so counted), never silently skipped."""
        api = self.types.apis[0] if self.types.apis else None
        if api is None or self.in_test:
            return
        detail = "the receiver comes from an injected callable whose result cannot be typed (no default, no caller)"
        self._add(node, f"(injected)#{method}", api, Judgement("unverifiable", detail))

    def _on_missing_class(self, node: Node, rtype: RType, method: str, api: GemApi) -> None:
        """`RubyLLM::Client.new(...).chat(...)`: a method called on an instance of a class the gem lacks is
        reported as `Client#chat`, missing (the class it would belong to does not exist)."""
        match = _ORIGIN_RE.match(rtype.name)
        if (
            match is None
            or match["first"] != "new"
            or match["sep"] != "."
            or rtype.name.count(".") + rtype.name.count("#") != 1
        ):
            return
        klass = match["root"]
        detail = f"{klass} is not defined in {api.gem} {api.version or ''}".rstrip() + f", so it has no #{method}"
        self._add(node, f"{relative(klass, api.namespace)}#{method}", api, Judgement("missing", detail))

    def _on_a_double(self, node: Node) -> bool:
        """`RubyLLM::Chat.stubs(:new).raises(...)`: the receiver chain goes through a stub/mock builder."""
        recv = node.child_by_field_name("receiver")
        while recv is not None and recv.type == "call":
            name = recv.child_by_field_name("method")
            if name is not None and self.parsed.text(name) in DOUBLE_METHODS:
                return True
            recv = recv.child_by_field_name("receiver")
        return False

    def _record_call(self, node: Node, rtype: RType, method: str, *, implicit_self: bool = False) -> None:
        """A call on a model that uses a gem macro: judged when the gem defines the method (the mixed-in
        modules, the names the macro generates); ActiveRecord's and the app's own methods are not ours."""
        record = self.defs.records.get(rtype.name)
        if record is None:
            return
        writer = _is_attribute_write(node)
        name = method + "=" if writer else method
        singleton = rtype.kind == "record_class"
        if not singleton and name in self.defs.record_methods.get(record.name, set()):
            return
        sep = "." if singleton else "#"
        generated = record.generated() if not singleton else {}
        found = record_lookup(record, name, singleton)
        if found is None:
            if name in generated:
                self._add(node, f"{record.name}{sep}{name}", record.api, Judgement("ok", location=generated[name]))
            return
        md, owner = found
        if md.visibility != "public" and not implicit_self:
            detail = f"{name} is {md.visibility} in {owner}; the model may define its own"
            judgement = Judgement("unverifiable", detail, location=md.location)
        else:
            args = CallArgs(positional=1) if writer else read_args(self.parsed, node)
            judgement = _judge_arguments(record.api, md, owner, args)
        self._add(node, f"{record.name}{sep}{name}", record.api, judgement)

    def _macro_call(self, node: Node, record: Record) -> None:
        """`acts_as_chat messages: :entries` in the model's body, against the variant the app configures."""
        args = read_args(self.parsed, node)
        judgement = _judge_arguments(record.api, record.chosen.method, record.chosen.owner, args)
        if judgement.verdict == "bad_arguments" and any(
            _judge_arguments(record.api, v.method, v.owner, args).verdict == "ok" for v in record.variants[1:]
        ):
            judgement = Judgement("unverifiable", f"{judgement.detail}; fits the other variant (use_new_acts_as)")
        self._add(node, f"{record.name}.{record.macro}", record.api, judgement)

    def _self_call(self, node: Node, method: str) -> None:
        """Bare calls inside a subclass of a gem class: class-body DSL or inherited instance methods;
        inside a model that uses a gem macro: the macro itself, and the mixed-in methods."""
        klass = enclosing_class(node)
        record = self.defs.records.get(qualified_name(self.parsed, klass)) if klass is not None else None
        if klass is not None and record is not None:
            if scope_of(node).id == klass.id:
                if method == record.macro:
                    self._macro_call(node, record)
            elif enclosing(node, "method") is not None and method not in self.types.class_methods(klass):
                self._record_call(node, RType("record", record.name), method, implicit_self=True)
            return
        superclass = klass.child_by_field_name("superclass") if klass is not None else None
        if klass is None or superclass is None or not superclass.named_children:
            return
        stype = self.types.constant_type(self.parsed.text(superclass.named_children[0]))
        if stype is None or stype.kind != "const" or method in self.types.class_methods(klass):
            return
        api = self.types.api_for(stype.name)
        in_body = scope_of(node).id == klass.id
        rtype = stype if in_body else RType.instance(stype.name)
        if api is None or api.lookup(rtype.name, method, in_body).method is None:
            return  # the class's own helper, Kernel, Rails: not ours to judge
        judgement = judge_method(api, rtype, method, read_args(self.parsed, node), implicit_self=True)
        if judgement is not None:
            self._add(node, display_call(rtype, method, api.namespace), api, judgement)

    def _add(self, node: Node, call: str, api: GemApi, judgement: Judgement) -> None:
        if api.mismatch and judgement.verdict in ("missing", "bad_arguments"):
            judgement = Judgement("unverifiable", f"{judgement.detail}; not trusted: {api.mismatch}")
        definition = None
        loc = judgement.location
        if loc is not None and loc.path and judgement.verdict in ("ok", "bad_arguments"):
            definition = Definition(gem=api.gem, version=api.version or "", path=loc.path, line=loc.line)
        self.calls.append(
            ApiCall(
                path=self.parsed.rel, line=line_of(node), call=call, verdict=judgement.verdict,
                definition=definition, detail=judgement.detail, suggestions=list(judgement.suggestions),
                in_test=self.in_test,
            )
        )  # fmt: skip


_ORIGIN_RE = re.compile(r"^(?P<root>[^.#]+)(?:(?P<sep>[.#])(?P<first>[^.#]+))?")


def _is_new_receiver(node: Node) -> bool:
    parent = node.parent
    if parent is None or parent.type != "call" or parent.child_by_field_name("receiver") != node:
        return False
    method = parent.child_by_field_name("method")
    return method is not None and method.text == b"new"


def _rooted_in_missing(api: GemApi, origin: str) -> bool:
    """Does an unresolved value come from something already reported missing: a constant the gem lacks
    (`RubyLLM::Client.new.chat`) or a method it certainly lacks (`Message#message.content`)?"""
    match = _ORIGIN_RE.match(origin)
    if api.index is None or match is None or match["root"] == api.namespace:
        return False
    root, first, singleton = match["root"], match["first"], match["sep"] == "."
    if api.find_class(root) is None:
        return api.constant_location(root) is None and api.foreign_constant(root) is None
    if not first:
        return False
    found = api.lookup(root, first, singleton)
    receiver = RType.const(root) if singleton else RType.instance(root)
    return found.method is None and found.certain and not api.is_core(receiver, first)


def _class_statement(node: Node) -> bool:
    parent = node.parent
    return (
        parent is not None
        and parent.type == "body_statement"
        and parent.parent is not None
        and (parent.parent.type == "class")
    )


def _is_attribute_write(node: Node) -> bool:
    parent = node.parent
    return (
        parent is not None
        and parent.type in ("assignment", "operator_assignment")
        and parent.child_by_field_name("left") == node
    )


def judge_constant(api: GemApi, name: str) -> Judgement:
    if api.index is None:
        return Judgement("unverifiable", api_unavailable(api))
    foreign = api.foreign_constant(name)
    if foreign is not None:
        return Judgement("unverifiable", f"{name} belongs to gem {foreign}, not {api.gem}")
    location = api.constant_location(name)
    if location is not None:
        return Judgement("ok", location=location)
    parent = name.rpartition("::")[0]
    if parent and api.constant_location(parent) is None and api.find_class(parent) is None and parent != api.namespace:
        detail = f"{parent} is not defined in {api.gem} {api.version or ''}".rstrip()
    else:
        detail = f"{name} is not defined in {api.gem} {api.version or ''}".rstrip()
    return Judgement("missing", detail, tuple(api.constant_suggestions(name)))


def judge_method(
    api: GemApi, rtype: RType, method: str, args: CallArgs, *, implicit_self: bool = False
) -> Judgement | None:
    """The verdict for `method` called on a value of `rtype`; None when it is not a gem call at all.
    `implicit_self`: a bare call from inside a subclass, where private/protected methods are callable."""
    if rtype.kind == "opaque":
        return Judgement("unverifiable", f"receiver comes from {rtype.name}, which could not be resolved")
    if api.index is None:
        return Judgement("unverifiable", api_unavailable(api))
    singleton = rtype.kind == "const"
    found = api.lookup(rtype.name, method, singleton)
    md = found.method
    if md is None:
        if api.is_core(rtype, method):
            return None
        if not found.certain:
            why = f"matches dynamic pattern {found.via_pattern}" if found.via_pattern else "class is open"
            return Judgement("unverifiable", f"{method} on {rtype.name}: {why} (method_missing or unknown ancestor)")
        kind = "class method" if singleton else "method"
        detail = f"undefined {kind} '{method}' for {rtype.name}"
        return Judgement("missing", detail, tuple(api.suggestions(rtype.name, method, singleton)))
    if found.owner is not None and api.find_class(found.owner) is None:
        return None  # Ruby core (Object, Kernel, Enumerable...): not a gem call
    if md.visibility != "public" and not implicit_self:
        return Judgement("missing", f"{md.visibility} method", location=md.location)
    return _judge_arguments(api, md, found.owner, args)


def _judge_arguments(api: GemApi, md: MethodDef, owner: str | None, args: CallArgs) -> Judgement:
    if md.name.endswith("=") and md.origin in ("attr", "macro", "struct"):
        return Judgement("ok", location=md.location)
    eff = api.effective(md, owner)
    if eff.params is None:
        return Judgement("unverifiable", eff.note, location=md.location)
    arity = check_args(eff.params, args)
    if arity.status == "unknown":
        return Judgement("unverifiable", arity.detail, location=md.location)
    if arity.status == "bad":
        via = f" (forwarded to {eff.via})" if eff.via else ""
        return Judgement("bad_arguments", f"{arity.detail}{via}", location=md.location)
    block = block_ignored(md.name, eff.takes_block, args)
    if block.status == "bad":
        return Judgement("bad_arguments", block.detail, location=md.location)
    return Judgement("ok", location=md.location)


def api_unavailable(api: GemApi) -> str:
    return api.unavailable or f"no source of {api.gem} available to verify against"
