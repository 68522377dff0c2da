"""Walks parsed Ruby files and records classes, modules and methods into an `Extraction`.

Invariants: only class/module bodies (and blocks/conditionals directly inside them) are walked, with
Ruby's scoping rules: `class << self` starts public, `def self.x` is public even after `private`, a
bare `public` re-opens visibility, a bare `private` ends `module_function`. Names that need the whole
gem (superclasses, mixins, forward targets, macros) are queued in `Pending` and resolved by
`api_index` after every file has been read. Dynamic names we cannot expand become glob patterns.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from shipbench.audit.ruby.api_calls import CallHandlers
from shipbench.audit.ruby.api_model import ClassDef, Location, MethodDef, Param, Visibility
from shipbench.audit.ruby.api_params import (
    body_facts,
    body_statements,
    literal_names,
    method_name,
    params_of,
    symbol_value,
)
from shipbench.audit.ruby.parse import Node, ParsedSource, line_of, walk

_CONTAINERS = {"if", "unless", "begin", "then", "else", "elsif", "parenthesized_statements", "body_statement"}
_ATTR_MACROS = {"attr_accessor", "attr_reader", "attr_writer"}
_GENERATORS = {"has_many", "has_one", "belongs_to", "define_method", "delegate", "class_attribute"}
_ALWAYS_PRIVATE = {
    "initialize",
    "initialize_copy",
    "initialize_dup",
    "initialize_clone",
    "respond_to_missing?",
}


@dataclass
class Scope:
    """Where a statement sits: the class it defines into and the rules in force there."""

    cls: ClassDef | None
    nesting: tuple[str, ...]
    singleton: bool = False
    visibility: Visibility = "public"
    module_function: bool = False
    bindings: dict[str, list[str] | None] = field(default_factory=dict)

    def table(self, singleton: bool | None = None) -> dict[str, MethodDef]:
        assert self.cls is not None
        single = self.singleton if singleton is None else singleton
        return self.cls.singleton_methods if single else self.cls.instance_methods


MacroTemplate = tuple[str, tuple[Param, ...]]
_READER: MacroTemplate = ("{}", ())
_WRITER: MacroTemplate = ("{}=", (Param(kind="req", name="value"),))
_ATTR_TEMPLATES: dict[str, list[MacroTemplate]] = {
    "attr_reader": [_READER],
    "attr_writer": [_WRITER],
    "attr_accessor": [_READER, _WRITER],
}


@dataclass
class Pending:
    """Cross-file facts resolved after the whole gem is read."""

    ancestors: list[tuple[ClassDef, str, tuple[str, ...], str]] = field(default_factory=list)
    forwards: list[tuple[MethodDef, str, bool, tuple[str, ...], str]] = field(default_factory=list)
    returns: list[tuple[MethodDef, tuple[str, ...], str]] = field(default_factory=list)
    # owner -> macro name -> what one call defines: (name template with "{}" for the symbol, params)
    macro_defs: dict[str, dict[str, list[MacroTemplate]]] = field(default_factory=dict)
    # (class, macro, symbol or None when the name is not readable, where)
    macro_calls: list[tuple[ClassDef, str, str | None, Location]] = field(default_factory=list)
    config_options: list[tuple[list[str], Location]] = field(default_factory=list)
    mixins: list[tuple[MethodDef, tuple[str, ...], str]] = field(default_factory=list)


class Extraction(CallHandlers):
    """Accumulates the classes of one gem, file by file."""

    def __init__(self) -> None:
        self.classes: dict[str, ClassDef] = {}
        self.pending = Pending()
        self.src: ParsedSource | None = None
        self.literal_constants: dict[str, list[str]] = {}  # "RubyLLM::X::NAMES" -> its literal %i/%w values

    # ---- entry -------------------------------------------------------------------------------
    def add_file(self, src: ParsedSource) -> None:
        self.src = src
        self.statements(Scope(cls=None, nesting=()), src.root.named_children)

    def statements(self, scope: Scope, nodes: list[Node]) -> None:
        for node in nodes:
            self.statement(scope, node)

    def statement(self, scope: Scope, node: Node) -> None:
        kind = node.type
        if kind in ("class", "module"):
            self.class_node(scope, node)
        elif kind == "singleton_class":
            self.singleton_class(scope, node)
        elif kind in ("method", "singleton_method"):
            self.define(scope, node)
        elif kind == "identifier":
            self.bare_word(scope, self.text(node))
        elif kind == "call":
            self.call(scope, node)
        elif kind == "assignment":
            self.assignment(scope, node)
        elif kind == "alias" and scope.cls is not None:
            self.alias_node(scope, node)
        elif kind in _CONTAINERS:
            self.statements(scope, [c for c in node.named_children if c.type != "comment"])

    # ---- helpers -----------------------------------------------------------------------------
    def text(self, node: Node) -> str:
        assert self.src is not None
        return self.src.text(node)

    def loc(self, node: Node) -> Location:
        assert self.src is not None
        return Location(path=self.src.rel, line=line_of(node))

    def get_class(self, name: str, kind: str, node: Node) -> ClassDef:
        cls = self.classes.get(name)
        if cls is None:
            cls = ClassDef(name=name, kind="module" if kind == "module" else "class")
            self.classes[name] = cls
        cls.locations.append(self.loc(node))
        return cls

    def qualify(self, scope: Scope, raw: str) -> str:
        raw = raw.replace(" ", "")
        if raw.startswith("::"):
            return raw[2:]
        return f"{scope.cls.name}::{raw}" if scope.cls is not None else raw

    # ---- classes -----------------------------------------------------------------------------
    def class_node(self, scope: Scope, node: Node) -> None:
        name_node = node.child_by_field_name("name")
        if name_node is None:
            return
        full = self.qualify(scope, self.text(name_node))
        cls = self.get_class(full, node.type, node)
        inner = Scope(cls=cls, nesting=(*scope.nesting, full))
        superclass = node.child_by_field_name("superclass")
        if superclass is not None and superclass.named_children:
            self.superclass(cls, inner, scope.nesting, superclass.named_children[0])
        body = node.child_by_field_name("body")
        if body is not None:
            self.statements(inner, body.named_children)

    def superclass(self, cls: ClassDef, inner: Scope, outer: tuple[str, ...], expr: Node) -> None:
        if expr.type in ("constant", "scope_resolution"):
            if cls.superclass is None:
                self.pending.ancestors.append((cls, "superclass", outer, self.text(expr)))
                cls.superclass = self.text(expr).lstrip(":")
        elif expr.type == "call" and self.struct_kind(expr) is not None:
            self.struct_members(cls, expr, inner)
        elif cls.superclass is None:
            cls.superclass = self.text(expr)  # not a constant: never in the index, so lookups stay unsure

    def singleton_class(self, scope: Scope, node: Node) -> None:
        value = node.child_by_field_name("value")
        body = node.child_by_field_name("body")
        if scope.cls is None or value is None or value.type != "self" or body is None:
            return
        self.statements(Scope(cls=scope.cls, nesting=scope.nesting, singleton=True), body.named_children)

    def struct_kind(self, call: Node) -> str | None:
        receiver = call.child_by_field_name("receiver")
        meth = call.child_by_field_name("method")
        if receiver is None or meth is None:
            return None
        pair = (self.text(receiver).lstrip(":"), self.text(meth))
        return {("Struct", "new"): "Struct", ("Data", "define"): "Data"}.get(pair)

    def struct_members(self, cls: ClassDef, call: Node, inner: Scope) -> None:
        kind = self.struct_kind(call)
        assert kind is not None
        if cls.superclass is None:
            cls.superclass = kind
        args = call.child_by_field_name("arguments")
        members, keyword_init = [], False
        for arg in args.named_children if args is not None else []:
            if arg.type == "pair" and self.text(arg).replace(" ", "").startswith(("keyword_init:true",)):
                keyword_init = True
            elif arg.type == "simple_symbol" or (arg.type == "delimited_symbol"):
                value = symbol_value(self.src, arg)  # type: ignore[arg-type]
                if value:
                    members.append(value)
        where = self.loc(call)
        for member in members:
            cls.instance_methods[member] = MethodDef(name=member, location=where, origin="struct")
            if kind == "Struct":
                cls.instance_methods[f"{member}="] = MethodDef(
                    name=f"{member}=",
                    params=[Param(kind="req", name="value")],
                    location=where,
                    origin="struct",
                )
        init = [Param(kind="key", name=m) for m in members] if keyword_init else [Param(kind="rest")]
        if not keyword_init:
            init.append(Param(kind="keyrest"))
        cls.instance_methods.setdefault(
            "initialize",
            MethodDef(name="initialize", params=init, visibility="private", location=where, origin="struct"),
        )
        block = call.child_by_field_name("block")
        body = block.child_by_field_name("body") if block is not None else None
        if body is not None:
            self.statements(inner, body.named_children)

    def assignment(self, scope: Scope, node: Node) -> None:
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is None or right is None or left.type != "constant":
            return
        name = self.text(left)
        if scope.cls is not None:
            scope.cls.constants[name] = self.loc(node)
        values = literal_names(self.src, right)  # type: ignore[arg-type]
        if values is not None:
            self.literal_constants[self.qualify(scope, name)] = values
        if right.type != "call":
            return
        full = self.qualify(scope, name)
        if self.struct_kind(right) is not None:
            cls = self.get_class(full, "class", node)
            self.struct_members(cls, right, Scope(cls=cls, nesting=(*scope.nesting, full)))
        elif self.text(right).startswith(("Class.new", "Module.new")):
            self.anonymous_class(scope, full, node, right)

    def anonymous_class(self, scope: Scope, full: str, node: Node, call: Node) -> None:
        kind = "module" if self.text(call).startswith("Module") else "class"
        cls = self.get_class(full, kind, node)
        args = call.child_by_field_name("arguments")
        if kind == "class" and args is not None and args.named_children:
            self.superclass(cls, Scope(cls=cls, nesting=scope.nesting), scope.nesting, args.named_children[0])
        block = call.child_by_field_name("block")
        body = block.child_by_field_name("body") if block is not None else None
        if body is not None:
            self.statements(Scope(cls=cls, nesting=(*scope.nesting, full)), body.named_children)

    # ---- defs --------------------------------------------------------------------------------
    def define(self, scope: Scope, node: Node) -> list[str]:
        """Record a def; returns the name(s) it defined (for `private def x`)."""
        assert self.src is not None
        name = method_name(self.src, node)
        if scope.cls is None or name is None:
            return []
        explicit_self = node.type == "singleton_method"
        if explicit_self:
            obj = node.child_by_field_name("object")
            if obj is None or obj.type != "self":
                return []
        singleton = explicit_self or scope.singleton
        md = self.method_def(scope, node, name, singleton)
        if explicit_self:
            md.visibility = "public"
        if scope.module_function and not singleton:
            scope.cls.singleton_methods[name] = md.model_copy(update={"singleton": True, "origin": "module_function"})
            md.visibility = "private"
        if name in _ALWAYS_PRIVATE and not singleton:
            md.visibility = "private"
        scope.table(singleton)[name] = md
        self.note_special(scope, node, md)
        return [name]

    def method_def(self, scope: Scope, node: Node, name: str, singleton: bool) -> MethodDef:
        assert self.src is not None and scope.cls is not None
        params = params_of(self.src, node)
        facts = body_facts(self.src, node, params)
        md = MethodDef(
            name=name,
            params=params,
            visibility=scope.visibility,
            singleton=singleton,
            location=self.loc(node),
            returns_self=facts.returns_self,
            yields=facts.yields,
            passes_through=facts.passes_through,
        )
        if facts.forward_target is not None:
            self.pending.forwards.append((md, scope.cls.name, singleton, scope.nesting, facts.forward_target))
        if facts.returns_const is not None:
            self.pending.returns.append((md, scope.nesting, facts.returns_const))
        if singleton:
            self.macro_body(scope, node, md)
        return md

    def macro_body(self, scope: Scope, node: Node, md: MethodDef) -> None:
        """A class method that includes modules into its caller (`acts_as_chat`): record them and the
        instance methods its body generates, so a project class calling it is modelled."""
        defaults = {p.name: d for p in md.params if p.name and (d := self.keyword_default(node, p.name))}
        for stmt in body_statements(node):
            if stmt.type != "call" or stmt.child_by_field_name("receiver") is not None:
                continue
            meth = stmt.child_by_field_name("method")
            args = self.args(stmt)
            called = self.text(meth) if meth is not None else ""
            if called == "include":
                for arg in args:
                    if arg.type in ("constant", "scope_resolution"):
                        md.mixes_in.append(self.text(arg).lstrip(":"))
                        self.pending.mixins.append((md, scope.nesting, self.text(arg)))
            elif called in _GENERATORS and args:
                first = args if called in ("delegate", "class_attribute") else args[:1]
                for arg in first:
                    name = symbol_value(self.src, arg)  # type: ignore[arg-type]
                    if name is None and arg.type == "identifier" and self.text(arg) in defaults:
                        name = f"{{{self.text(arg)}={defaults[self.text(arg)]}}}"
                    if name and name not in md.adds:
                        md.adds.append(name)

    def keyword_default(self, node: Node, name: str) -> str | None:
        params = node.child_by_field_name("parameters")
        for child in params.named_children if params is not None else []:
            pname = child.child_by_field_name("name")
            value = child.child_by_field_name("value")
            if child.type == "keyword_parameter" and pname is not None and self.text(pname) == name:
                return symbol_value(self.src, value) if value is not None else None  # type: ignore[arg-type]
        return None

    def note_special(self, scope: Scope, node: Node, md: MethodDef) -> None:
        assert scope.cls is not None and self.src is not None
        if md.name == "method_missing":
            if md.singleton:
                scope.cls.open_singleton = True
            else:
                scope.cls.open_instance = True
        if md.singleton and md.params and md.params[0].kind in ("req", "opt"):
            templates = self.macro_templates(node, md.params[0].name or "")
            if templates:
                self.pending.macro_defs.setdefault(scope.cls.name, {})[md.name] = templates
        if md.name == "configuration_options":
            stmts = body_statements(node)
            names = literal_names(self.src, stmts[-1]) if stmts else None
            if names:
                self.pending.config_options.append((names, self.loc(stmts[-1])))

    def macro_templates(self, node: Node, param: str) -> list[MacroTemplate]:
        """What a class-level macro defines from its first parameter: `attr_accessor key` (directly or via
        send) gives the reader and writer; `define_method("#{key}=")` gives `{}=` with the block's params; a
        define_method whose name interpolates anything else gives a `*` template (names unknown)."""
        body = node.child_by_field_name("body")
        out: list[MacroTemplate] = []
        for call in walk(body) if body is not None else iter(()):
            if call.type != "call" or call.child_by_field_name("receiver") is not None:
                continue
            meth = call.child_by_field_name("method")
            args = call.child_by_field_name("arguments")
            if meth is None or args is None or not args.named_children:
                continue
            words = [self.text(a) for a in args.named_children]
            called = self.text(meth)
            if called in ("send", "public_send", "__send__") and len(words) >= 2:
                called, words = words[0].lstrip(":"), words[1:]
            if called in _ATTR_TEMPLATES and words and words[0] == param:
                out += [t for t in _ATTR_TEMPLATES[called] if t not in out]
            elif called == "define_method":
                template = self.name_template(args.named_children[0], param)
                if template is not None:
                    out.append((template, tuple(self.block_params(call))))
        return out

    def name_template(self, arg: Node, param: str) -> str | None:
        """`"#{key}="` -> "{}="; `key` -> "{}"; interpolating anything else -> "*"; a literal -> None."""
        if arg.type == "identifier":
            return "{}" if self.text(arg) == param else "*"
        if arg.type not in ("string", "delimited_symbol"):
            return None
        parts: list[str] = []
        for child in arg.named_children:
            if child.type == "interpolation":
                inner = child.named_children
                parts.append("{}" if len(inner) == 1 and self.text(inner[0]) == param else "*")
            else:
                parts.append(self.text(child).replace("{", "").replace("}", ""))
        template = "".join(parts)
        return template if "{}" in template or "*" in template else None

    def bare_word(self, scope: Scope, word: str) -> None:
        if word in ("private", "protected", "public"):
            scope.visibility = word  # type: ignore[assignment]
            scope.module_function = False
        elif word == "module_function":
            scope.module_function = True

    def block_scope(self, scope: Scope, bindings: dict[str, list[str] | None]) -> Scope:
        return replace(scope, bindings={**scope.bindings, **bindings})

    def constant_names(self, scope: Scope, raw: str) -> list[str] | None:
        """The literal values of a constant array read so far, found lexically (innermost first)."""
        raw = raw.replace(" ", "")
        if raw.startswith("::"):
            return self.literal_constants.get(raw[2:])
        for outer in reversed(scope.nesting):
            found = self.literal_constants.get(f"{outer}::{raw}")
            if found is not None:
                return found
        return self.literal_constants.get(raw)

    def expand(self, scope: Scope, node: Node) -> tuple[list[str], str | None]:
        """Names an interpolated string/symbol can take: (expanded names, or a glob pattern)."""
        parts: list[list[str] | None] = []
        for child in node.named_children:
            if child.type == "interpolation":
                inner = child.named_children
                bound = scope.bindings.get(self.text(inner[0])) if len(inner) == 1 else None
                parts.append(bound)
            else:
                parts.append([self.text(child)])
        if any(p is None for p in parts):
            return [], "".join("*" if p is None else p[0] for p in parts)
        return ["".join(combo) for combo in itertools.product(*[p for p in parts if p is not None])], None
