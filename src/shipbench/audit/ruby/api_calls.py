"""Class-body calls that define or re-scope methods without a `def`: visibility with arguments,
attr_*, alias/alias_method, def_delegator(s), ActiveSupport `delegate`, define_method, mixins,
literal-array loops, DSL blocks, and calls that may be user macros (resolved later).

Invariants: a method created here always carries the location of the call that created it and
its `origin`; a name that cannot be known statically becomes a glob pattern, never a guess;
delegated/aliased-from-elsewhere methods take `(...)` params so they never fail an arity check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from shipbench.audit.ruby.api_model import ClassDef, Location, MethodDef, Param, Visibility
from shipbench.audit.ruby.api_params import literal_names, symbol_value
from shipbench.audit.ruby.parse import Node, ParsedSource

if TYPE_CHECKING:
    from shipbench.audit.ruby.api_extract import Pending, Scope

_VIS = {"private", "protected", "public"}
_ATTRS = {
    "attr_reader": (True, False),
    "attr_writer": (False, True),
    "attr_accessor": (True, True),
    "attr": (True, False),
}
_FWD = [Param(kind="fwd")]


class CallHandlers:
    """Mixin for `Extraction`: everything reached from a `call` node in a class body."""

    src: ParsedSource | None
    pending: Pending

    # provided by Extraction
    def text(self, node: Node) -> str:
        raise NotImplementedError

    def loc(self, node: Node) -> Location:
        raise NotImplementedError

    def statements(self, scope: Scope, nodes: list[Node]) -> None:
        raise NotImplementedError

    def define(self, scope: Scope, node: Node) -> list[str]:
        raise NotImplementedError

    def block_scope(self, scope: Scope, bindings: dict[str, list[str] | None]) -> Scope:
        raise NotImplementedError

    def expand(self, scope: Scope, node: Node) -> tuple[list[str], str | None]:
        raise NotImplementedError

    def constant_names(self, scope: Scope, raw: str) -> list[str] | None:
        raise NotImplementedError

    # ---- dispatch ----------------------------------------------------------------------------
    def call(self, scope: Scope, node: Node) -> list[str]:
        meth = node.child_by_field_name("method")
        receiver = node.child_by_field_name("receiver")
        if meth is None:
            return []
        name = self.text(meth)
        if receiver is not None and receiver.type != "self":
            self.loop(scope, node, receiver, name)
            return []
        if scope.cls is None:
            return []
        args = self.args(node)
        handler = _HANDLERS.get(name)
        if handler is not None:
            return handler(self, scope, node, args)
        self.dsl_block(scope, node, name)
        if args and args[0].type in ("simple_symbol", "delimited_symbol"):
            sym = symbol_value(self.src, args[0])  # type: ignore[arg-type]
            if sym:
                self.pending.macro_calls.append((scope.cls, name, sym, self.loc(node)))
        elif args and args[0].type in ("identifier", "string", "call", "interpolation"):
            # `option(key)` in a loop over a readable list gives names; anything else: names unknown
            names, pattern = self.dynamic_names(scope, args[0])
            for sym in names if pattern is None else [None]:
                self.pending.macro_calls.append((scope.cls, name, sym, self.loc(node)))
        return []

    def meth_name(self, node: Node) -> str:
        meth = node.child_by_field_name("method")
        return self.text(meth).strip() if meth is not None else ""

    def args(self, node: Node) -> list[Node]:
        arguments = node.child_by_field_name("arguments")
        if arguments is None:
            return []
        return [a for a in arguments.named_children if a.type != "comment"]

    def names(self, args: list[Node]) -> list[str]:
        out = []
        for arg in args:
            value = symbol_value(self.src, arg)  # type: ignore[arg-type]
            if value:
                out.append(value)
        return out

    def add(self, scope: Scope, md: MethodDef, singleton: bool | None = None) -> str:
        single = scope.singleton if singleton is None else singleton
        md.singleton = single
        scope.table(single)[md.name] = md
        return md.name

    # ---- visibility --------------------------------------------------------------------------
    def visibility(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        word = cast(Visibility, self.meth_name(node))
        if not args:
            scope.visibility, scope.module_function = word, False
            return []
        return self.mark(scope, args, word, None)

    def mark(self, scope: Scope, args: list[Node], word: Visibility, singleton: bool | None) -> list[str]:
        names: list[str] = []
        for arg in args:
            if arg.type in ("method", "singleton_method"):
                names += self.define(scope, arg)
            elif arg.type == "call":
                names += self.call(scope, arg)
            else:
                names += self.names([arg])
        table = scope.table(singleton)
        for name in names:
            if name in table:
                table[name].visibility = word
        return names

    def class_visibility(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        word = "private" if self.meth_name(node).startswith("private") else "public"
        return self.mark(scope, args, word, True)  # type: ignore[arg-type]

    def module_function(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        if not args:
            scope.module_function = True
            return []
        assert scope.cls is not None
        names = self.names(args)
        for name in names:
            md = scope.cls.instance_methods.get(name)
            if md is not None:
                scope.cls.singleton_methods[name] = md.model_copy(
                    update={"singleton": True, "visibility": "public", "origin": "module_function"}
                )
                md.visibility = "private"
        return names

    def private_constant(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        assert scope.cls is not None
        scope.cls.private_constants.extend(n for n in self.names(args) if n not in scope.cls.private_constants)
        return []

    # ---- attributes, aliases, delegation -----------------------------------------------------
    def attrs(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        reader, writer = _ATTRS[self.meth_name(node)]
        where, out = self.loc(node), []
        for name in self.names(args):
            if reader:
                out.append(
                    self.add(
                        scope,
                        MethodDef(name=name, visibility=scope.visibility, location=where, origin="attr"),
                    )
                )
            if writer:
                md = MethodDef(
                    name=f"{name}=",
                    params=[Param(kind="req", name="value")],
                    visibility=scope.visibility,
                    location=where,
                    origin="attr",
                )
                out.append(self.add(scope, md))
        return out

    def alias_method(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        names = self.names(args[:2])
        if len(names) != 2:
            return []
        return [self.make_alias(scope, names[0], names[1], node)]

    def alias_node(self, scope: Scope, node: Node) -> None:
        new, old = node.child_by_field_name("name"), node.child_by_field_name("alias")
        if new is None or old is None or self.text(new).startswith("$"):
            return
        new_name = symbol_value(self.src, new) or self.text(new)  # type: ignore[arg-type]
        old_name = symbol_value(self.src, old) or self.text(old)  # type: ignore[arg-type]
        self.make_alias(scope, new_name, old_name, node)

    def make_alias(self, scope: Scope, new: str, old: str, node: Node) -> str:
        assert scope.cls is not None
        original = scope.table().get(old)
        if original is not None:
            md = original.model_copy(update={"name": new, "location": self.loc(node), "origin": "alias"})
        else:  # defined in an ancestor: accept any arguments, point at the original
            sep = "." if scope.singleton else "#"
            md = MethodDef(
                name=new,
                params=list(_FWD),
                location=self.loc(node),
                origin="alias",
                forwards_to=f"{scope.cls.name}{sep}{old}",
            )
        return self.add(scope, md)

    def delegators(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        meth = self.meth_name(node)
        names = self.names(args)
        if len(names) < 2:
            return []
        if meth in ("def_delegator", "def_instance_delegator"):
            targets = [names[2] if len(names) > 2 else names[1]]
        else:
            targets = names[1:]
        where = self.loc(node)
        return [
            self.add(scope, MethodDef(name=n, params=list(_FWD), location=where, origin="delegator")) for n in targets
        ]

    def delegate(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        options: dict[str, Node | None] = {}
        for pair in args:
            key = pair.child_by_field_name("key") if pair.type == "pair" else None
            if key is not None:
                options[self.text(key).rstrip(":")] = pair.child_by_field_name("value")
        to = options.get("to")
        if to is None:
            return []
        prefix_node = options.get("prefix")
        prefix = ""
        if prefix_node is not None and prefix_node.type == "true":
            prefix = f"{(symbol_value(self.src, to) or self.text(to)).lstrip('@')}_"  # type: ignore[arg-type]
        elif prefix_node is not None and prefix_node.type != "false":
            prefix = f"{symbol_value(self.src, prefix_node) or self.text(prefix_node)}_"  # type: ignore[arg-type]
        where = self.loc(node)
        return [
            self.add(scope, MethodDef(name=prefix + n, params=list(_FWD), location=where, origin="delegator"))
            for n in self.names([a for a in args if a.type != "pair"])
        ]

    # ---- dynamic definitions -----------------------------------------------------------------
    def define_method(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        assert scope.cls is not None
        if not args:
            return []
        singleton = scope.singleton or self.meth_name(node) == "define_singleton_method"
        names, pattern = self.dynamic_names(scope, args[0])
        if pattern is not None:
            patterns = scope.cls.singleton_patterns if singleton else scope.cls.instance_patterns
            if pattern not in patterns:
                patterns.append(pattern)
            return []
        params = self.block_params(node) if len(args) == 1 else list(_FWD)
        where = self.loc(node)
        return [
            self.add(
                scope,
                MethodDef(
                    name=n,
                    params=list(params),
                    visibility=scope.visibility,
                    location=where,
                    origin="define_method",
                ),
                singleton,
            )
            for n in names
        ]

    def dynamic_names(self, scope: Scope, arg: Node) -> tuple[list[str], str | None]:
        literal = symbol_value(self.src, arg)  # type: ignore[arg-type]
        if literal:
            return [literal], None
        if arg.type in ("string", "delimited_symbol"):
            return self.expand(scope, arg)
        if arg.type == "identifier" and scope.bindings.get(self.text(arg)):
            return list(scope.bindings[self.text(arg)] or []), None
        return [], "*"

    def block_params(self, node: Node) -> list[Param]:
        from shipbench.audit.ruby.api_params import _param

        block = node.child_by_field_name("block")
        params = block.child_by_field_name("parameters") if block is not None else None
        if params is None:
            return []
        assert self.src is not None
        return [_param(self.src, p) for p in params.named_children if p.type not in ("comment",)]

    def mixin(self, scope: Scope, node: Node, args: list[Node]) -> list[str]:
        assert scope.cls is not None
        word = self.meth_name(node)
        field = {"include": "includes", "extend": "extends", "prepend": "prepends"}[word]
        if scope.singleton and field == "includes":
            field = "extends"
        for arg in args:
            if arg.type == "self":
                getattr(scope.cls, field).append(scope.cls.name)
            elif arg.type in ("constant", "scope_resolution"):
                raw = self.text(arg)
                getattr(scope.cls, field).append(raw.lstrip(":"))
                self.pending.ancestors.append((scope.cls, field, scope.nesting, raw))
            else:
                getattr(scope.cls, field).append(self.text(arg))  # dynamic: never in the index -> unsure
        return []

    # ---- blocks ------------------------------------------------------------------------------
    def loop(self, scope: Scope, node: Node, receiver: Node, name: str) -> None:
        """`%w[a b].each do |cap| define_method ... end` and friends at class level."""
        block = node.child_by_field_name("block")
        if scope.cls is None or block is None or name not in ("each", "each_with_index", "map", "each_key"):
            return
        values = literal_names(self.src, receiver)  # type: ignore[arg-type]
        if values is None and receiver.type in ("constant", "scope_resolution"):
            values = self.constant_names(scope, self.text(receiver))
        params = block.child_by_field_name("parameters")
        bound = [p for p in params.named_children if p.type == "identifier"] if params is not None else []
        bindings = {self.text(bound[0]): values} if bound else {}
        self.walk_block(self.block_scope(scope, bindings), block)

    def dsl_block(self, scope: Scope, node: Node, name: str) -> None:
        block = node.child_by_field_name("block")
        if block is None:
            return
        if name == "class_methods":
            from dataclasses import replace

            self.walk_block(replace(scope, singleton=True, visibility="public"), block)
        elif name in ("included", "prepended", "class_eval", "class_exec", "module_eval", "instance_eval"):
            self.walk_block(scope, block)

    def walk_block(self, scope: Scope, block: Node) -> None:
        body = block.child_by_field_name("body")
        if body is not None:
            self.statements(scope, [c for c in body.named_children if c.type != "comment"])


_HANDLERS = {
    "private": CallHandlers.visibility,
    "protected": CallHandlers.visibility,
    "public": CallHandlers.visibility,
    "private_class_method": CallHandlers.class_visibility,
    "public_class_method": CallHandlers.class_visibility,
    "module_function": CallHandlers.module_function,
    "private_constant": CallHandlers.private_constant,
    "attr_reader": CallHandlers.attrs,
    "attr_writer": CallHandlers.attrs,
    "attr_accessor": CallHandlers.attrs,
    "attr": CallHandlers.attrs,
    "alias_method": CallHandlers.alias_method,
    "def_delegators": CallHandlers.delegators,
    "def_delegator": CallHandlers.delegators,
    "def_instance_delegators": CallHandlers.delegators,
    "def_instance_delegator": CallHandlers.delegators,
    "delegate": CallHandlers.delegate,
    "define_method": CallHandlers.define_method,
    "define_singleton_method": CallHandlers.define_method,
    "include": CallHandlers.mixin,
    "extend": CallHandlers.mixin,
    "prepend": CallHandlers.mixin,
}

__all__ = ["CallHandlers", "ClassDef"]
