"""One verified gem as the resolver sees it: its index (or none), memoised lookups, result types.

Invariants: every lookup is total (an exception inside the index code becomes an "unknown" Lookup);
without an index nothing is ever certainly absent, so no "missing" verdict can come from here;
result types follow, in order: documented facts, MethodDef.returns, forwards_to a constructor,
returns_self; a gem-typed receiver whose method cannot be resolved yields an opaque type.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from shipbench.audit.ruby.api_lookup import find_class, find_method, public_constants, suggest
from shipbench.audit.ruby.api_model import ApiIndex, ClassDef, Location, Lookup, MethodDef, Param
from shipbench.audit.ruby.infer_model import (
    ELEMENT_METHODS,
    ENUMERABLE_METHODS,
    ITERATORS,
    KNOWN_BLOCK_PARAMS,
    KNOWN_MISNAMES,
    KNOWN_RETURNS,
    MODULE_METHODS,
    OBJECT_METHODS,
    SUBARRAY_METHODS,
    RType,
    display_call,
    parse_known,
    qualify,
    relative,
)

UNKNOWN = Lookup(method=None, owner=None, certain=False)
MAX_FORWARD_HOPS = 4


@dataclass(frozen=True)
class Effective:
    """The parameters a call must fit after following forwarders, and whether a block is used."""

    params: list[Param] | None  # None: forwarding could not be resolved
    takes_block: bool
    via: str = ""  # the final callee when forwarding was followed
    note: str = ""


@dataclass
class GemApi:
    gem: str
    namespace: str
    index: ApiIndex | None
    version: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)  # "schema" -> "ruby_llm-schema" (RubyLLM::Schema)
    unavailable: str = ""  # why there is no source when that is not just "not installed" (a fork)
    mismatch: str = ""  # set when the source's version is not the locked one: no missing/bad verdicts then
    _lookups: dict[tuple[str, str, bool], Lookup] = field(default_factory=dict)
    _classes: dict[str, ClassDef | None] = field(default_factory=dict)

    # ---- constants

    def owns(self, const_name: str) -> bool:
        name = const_name.lstrip(":")
        return name == self.namespace or name.startswith(self.namespace + "::")

    def find_class(self, name: str) -> ClassDef | None:
        if name not in self._classes:
            found: ClassDef | None = None
            if self.index is not None:
                try:
                    found = find_class(self.index, name)
                except Exception:
                    found = None
            self._classes[name] = found
        return self._classes[name]

    def constant_location(self, name: str) -> Location | None:
        """Where a constant (class, module or value constant) is defined; None when not in the index."""
        cls = self.find_class(name)
        if cls is not None:
            return cls.locations[0] if cls.locations else Location(path="", line=0)
        parent, _, last = name.rpartition("::")
        owner = self.find_class(parent) if parent else None
        if owner is not None and last in owner.constants:
            return owner.constants[last]
        return None

    def foreign_constant(self, name: str) -> str | None:
        """The extension gem (ruby_llm-schema) that defines a namespace like RubyLLM::Schema, if any."""
        if not name.startswith(self.namespace + "::"):
            return None
        segment = name[len(self.namespace) + 2 :].split("::")[0]
        return self.extensions.get(segment.lower())

    def constant_suggestions(self, name: str) -> list[str]:
        if self.index is None:
            return []
        try:
            names = public_constants(self.index)
        except Exception:
            names = list(self.index.classes)
        short = {n.rpartition("::")[2]: n for n in names}
        target = name.rpartition("::")[2]
        close = difflib.get_close_matches(target, list(short), n=3, cutoff=0.5)
        return [short[c] for c in close]

    # ---- methods

    def lookup(self, class_name: str, method: str, singleton: bool) -> Lookup:
        key = (class_name, method, singleton)
        if key not in self._lookups:
            result = UNKNOWN
            if self.index is not None:
                try:
                    result = find_method(self.index, class_name, method, singleton=singleton)
                except Exception:
                    result = UNKNOWN
            self._lookups[key] = result
        return self._lookups[key]

    def suggestions(self, class_name: str, method: str, singleton: bool) -> list[str]:
        """Nearest real names, led by the documented real name of a commonly invented one (text -> content)."""
        if self.index is None:
            return []
        try:
            near = list(suggest(self.index, class_name, method, singleton=singleton))[:5]
        except Exception:
            near = []
        real = None if singleton else self._misname(class_name, method)
        return [real, *(h for h in near if h != real)][:5] if real else near

    def _misname(self, class_name: str, method: str) -> str | None:
        known = KNOWN_MISNAMES.get(self.gem, {})
        current: str | None = class_name
        for _ in range(8):  # the class, then its superclasses (a Chunk is a Message)
            cls = self.find_class(current) if current is not None else None
            if cls is None:
                return None
            real = known.get((relative(cls.name, self.namespace), method))
            if real is not None and self.lookup(class_name, real, False).method is not None:
                return real
            current = qualify(cls.superclass, self.namespace) if cls.superclass else None
        return None

    def is_core(self, rtype: RType, method: str) -> bool:
        """A Ruby core method the receiver answers without the gem defining it."""
        if method in OBJECT_METHODS:
            return True
        if rtype.kind == "const":
            return method in MODULE_METHODS
        return method in ENUMERABLE_METHODS and self._includes(rtype.name, "Enumerable")

    def _includes(self, class_name: str, module: str, depth: int = 0) -> bool:
        cls = self.find_class(class_name)
        if cls is None or depth > 8:
            return False
        if module in cls.includes:
            return True
        return cls.superclass is not None and self._includes(cls.superclass, module, depth + 1)

    # ---- forwarding

    def effective(self, method: MethodDef, owner: str | None) -> Effective:
        """Follow `forwards_to` while the parameters are (...), *args/**kw, or passed through unchanged."""
        current, current_owner, hops = method, owner or self.namespace, 0
        takes_block = False
        via = ""
        while True:
            kinds = {p.kind for p in current.params}
            takes_block = takes_block or ("block" in kinds and "fwd" not in kinds) or current.yields
            forwards = "fwd" in kinds or ("rest" in kinds and "keyrest" in kinds) or current.passes_through
            if not forwards:
                return Effective(list(current.params), takes_block, via)
            if current.forwards_to is None:
                if "fwd" in kinds:
                    return Effective(None, True, via, f"{current.name}(...) forwards to an unknown callee")
                return Effective(list(current.params), True, via)
            hops += 1
            target = self._resolve_target(current.forwards_to, current_owner)
            if target is None or hops > MAX_FORWARD_HOPS:
                return Effective(None, True, via, f"cannot resolve forwarding to {current.forwards_to}")
            via = current.forwards_to
            current, current_owner = target

    def _resolve_target(self, target: str, owner: str) -> tuple[MethodDef, str] | None:
        singleton = "#" not in target
        cls_name, _, meth = target.rpartition("#" if not singleton else ".")
        if not meth:
            return None
        for candidate in self._candidates(cls_name, owner) if cls_name else [owner]:
            if self.find_class(candidate) is None:
                continue
            found = self.lookup(candidate, meth, singleton)
            if found.method is not None:
                return found.method, found.owner or candidate
        return None

    def _candidates(self, name: str, owner: str) -> list[str]:
        name = name.lstrip(":")
        out: list[str] = []
        scope = owner
        while scope:
            out.append(f"{scope}::{name}")
            scope = scope.rpartition("::")[0]
        out += [qualify(name, self.namespace), name]
        return list(dict.fromkeys(out))

    # ---- result types

    def result_type(self, recv: RType, method: str) -> RType | None:
        if recv.kind == "opaque":
            return self._opaque(recv, method)
        if recv.kind == "array":
            if method in ELEMENT_METHODS:
                return RType.instance(recv.name)
            return recv if method in SUBARRAY_METHODS else None
        singleton = recv.kind == "const"
        if singleton and method == "new" and self.find_class(recv.name) is not None:
            return RType.instance(recv.name)
        known = KNOWN_RETURNS.get(self.gem, {}).get((relative(recv.name, self.namespace), method, singleton))
        if known is not None:
            return parse_known(known, self.namespace)
        found = self.lookup(recv.name, method, singleton)
        if found.method is None:
            if self.index is None or self.is_core(recv, method):
                return None
            return self._opaque(recv, method)
        return self._declared_type(recv, found.method, found.owner or recv.name)

    def _opaque(self, recv: RType, method: str) -> RType:
        """An unresolvable result, named by the call that produced it (kept under the namespace)."""
        origin = display_call(recv, method, self.namespace)
        return RType.opaque(origin if origin.startswith(self.namespace) else f"{self.namespace}::{origin}")

    def _declared_type(self, recv: RType, method: MethodDef, owner: str) -> RType | None:
        if method.returns:
            for candidate in self._candidates(method.returns, owner):
                if self.find_class(candidate) is not None:
                    return RType.instance(candidate)
        if method.forwards_to and (method.forwards_to.endswith(".new") or "#initialize" in method.forwards_to):
            cls_name = method.forwards_to.replace("#initialize", "").removesuffix(".new")
            for candidate in self._candidates(cls_name, owner):
                if self.find_class(candidate) is not None:
                    return RType.instance(candidate)
        if method.returns_self:
            return recv
        return None

    def block_param_type(self, recv: RType, method: str, position: int) -> RType | None:
        if recv.kind == "opaque" or position != 0:
            return None
        if recv.kind == "array":
            return RType.instance(recv.name) if method in ITERATORS else None
        singleton = recv.kind == "const"
        key = (relative(recv.name, self.namespace), method, singleton)
        known = KNOWN_BLOCK_PARAMS.get(self.gem, {}).get(key)
        if known is not None:
            result = parse_known(known, self.namespace)
            if result.kind == "instance" and self.index is not None and self.find_class(result.name) is None:
                return None
            return result
        if not singleton and method in ITERATORS and self._includes(recv.name, "Enumerable"):
            return self.block_param_type(recv, "each", 0) if method != "each" else None
        return None
