"""Ancestor-aware method lookup over an `ApiIndex`, with Ruby core classes as known data.

Invariants: `Lookup.certain` is True only when absence is proven: every ancestor is known (in the
index or in `api_core.CORE`), no ancestor defines method_missing for that side (instance/class),
and no dynamic-name pattern could match. A name found returns its definition whatever its
visibility; callers judge visibility. `Class.new` takes the parameters of `#initialize`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase

from shipbench.audit.ruby.api_core import CORE, OBJECT_TAIL, CoreClass
from shipbench.audit.ruby.api_model import ApiIndex, ClassDef, Lookup, MethodDef, Param, ParamKind


@dataclass(frozen=True)
class _Unknown:
    name: str


_Ancestor = ClassDef | CoreClass | _Unknown


def find_class(index: ApiIndex, name: str) -> ClassDef | None:
    return index.classes.get(name.strip().removeprefix("::"))


def _norm(name: str) -> str:
    return name.strip().removeprefix("::")


def instance_ancestors(index: ApiIndex, name: str, seen: set[str] | None = None) -> Iterator[_Ancestor]:
    """Ruby's ancestor order: prepends, the class, its includes (last first), then the superclass."""
    seen = set() if seen is None else seen
    name = _norm(name)
    if name in seen:
        return
    seen.add(name)
    cls = index.classes.get(name)
    if cls is not None:
        for mod in reversed(cls.prepends):
            yield from instance_ancestors(index, mod, seen)
        yield cls
        for mod in reversed(cls.includes):
            yield from instance_ancestors(index, mod, seen)
        if cls.kind == "class":
            yield from instance_ancestors(index, cls.superclass or "Object", seen)
        return
    core = CORE.get(name)
    if core is None:
        yield _Unknown(name)
        return
    yield core
    for mod in reversed(core.includes):
        yield from instance_ancestors(index, mod, seen)
    if core.superclass:
        yield from instance_ancestors(index, core.superclass, seen)


def _full_instance_chain(index: ApiIndex, name: str) -> Iterator[_Ancestor]:
    seen: set[str] = set()
    yield from instance_ancestors(index, name, seen)
    for tail in OBJECT_TAIL:
        yield from instance_ancestors(index, tail, seen)


def _core_def(name: str, singleton: bool) -> MethodDef:
    return MethodDef(name=name, params=[Param(kind="fwd")], singleton=singleton, origin="core")


def _instance_lookup(index: ApiIndex, class_name: str, method: str) -> Lookup:
    certain = True
    for anc in _full_instance_chain(index, class_name):
        if isinstance(anc, _Unknown):
            certain = False
        elif isinstance(anc, CoreClass):
            if method in anc.instance:
                return Lookup(_core_def(method, False), anc.name, True)
        else:
            found = anc.instance_methods.get(method)
            if found is not None:
                return Lookup(found, anc.name, True)
            pattern = next((p for p in anc.instance_patterns if fnmatchcase(method, p)), None)
            if pattern is not None:
                return Lookup(None, anc.name, False, via_pattern=pattern)
            certain = certain and not anc.open_instance
    return Lookup(None, None, certain)


def _singleton_chain(index: ApiIndex, cls: ClassDef) -> Iterator[tuple[_Ancestor, bool]]:
    """(ancestor, is_own_singleton_side): the class and its superclasses' class methods (with what
    they extend), then the core superclass's class methods, then Class/Module and Object."""
    seen: set[str] = set()
    current: ClassDef | None = cls
    last_super: str | None = None
    while current is not None and current.name not in seen:
        seen.add(current.name)
        yield current, True
        for mod in reversed(current.extends):
            yield from ((a, False) for a in instance_ancestors(index, mod, set()))
        for mod in current.includes:
            core = CORE.get(mod)
            if core is not None and core.adds_singleton:
                yield CoreClass(f"{mod}.included", "module", instance=core.adds_singleton), False
        last_super = current.superclass or ("Object" if current.kind == "class" else None)
        current = index.classes.get(last_super) if last_super else None
    core_name = last_super
    while core_name is not None:
        core = CORE.get(core_name)
        if core is None:
            yield _Unknown(core_name), False
            break
        yield CoreClass(f"{core.name}.singleton", "module", instance=core.singleton), False
        core_name = core.superclass
    yield from ((a, False) for a in _full_instance_chain(index, "Class" if cls.kind == "class" else "Module"))


def _singleton_lookup(index: ApiIndex, cls: ClassDef, method: str) -> Lookup:
    certain = True
    for anc, own in _singleton_chain(index, cls):
        if isinstance(anc, _Unknown):
            certain = False
            continue
        if isinstance(anc, CoreClass):
            if method == "new" and cls.kind == "class" and anc.name == "Class":
                return _new_lookup(index, cls)
            if method in anc.instance:
                return Lookup(_core_def(method, True), anc.name.split(".")[0], True)
            continue
        table = anc.singleton_methods if own else anc.instance_methods
        found = table.get(method)
        if found is not None:
            return Lookup(found, anc.name, True)
        patterns = anc.singleton_patterns if own else anc.instance_patterns
        pattern = next((p for p in patterns if fnmatchcase(method, p)), None)
        if pattern is not None:
            return Lookup(None, anc.name, False, via_pattern=pattern)
        certain = certain and not (anc.open_singleton if own else anc.open_instance)
    return Lookup(None, None, certain)


def _new_lookup(index: ApiIndex, cls: ClassDef) -> Lookup:
    """`Klass.new`: the parameters of the nearest #initialize (core ones included)."""
    init = _instance_lookup(index, cls.name, "initialize")
    if init.method is not None:
        params = list(init.method.params)
        where = init.method.location
    else:
        kinds = _core_init(index, cls.name)
        params = [Param(kind=k) for k in kinds] if kinds is not None else [Param(kind="fwd")]
        where = None
    md = MethodDef(
        name="new", params=params, singleton=True, location=where, origin="core",
        forwards_to=f"{init.owner}#initialize" if init.method is not None else None, returns=cls.name,
    )  # fmt: skip
    return Lookup(md, cls.name, True)


def _core_init(index: ApiIndex, name: str) -> tuple[ParamKind, ...] | None:
    for anc in _full_instance_chain(index, name):
        if isinstance(anc, _Unknown):
            return None
        if isinstance(anc, CoreClass) and anc.kind == "class":
            return anc.init_params  # type: ignore[return-value]
    return ()


def find_method(index: ApiIndex, class_name: str, method: str, *, singleton: bool) -> Lookup:
    cls = find_class(index, class_name)
    if cls is None:
        core = CORE.get(_norm(class_name))
        if core is None:
            return Lookup(None, None, False)
        if not singleton:
            return _instance_lookup(index, core.name, method)
        names = core.singleton | _MODULE_SIDE
        return Lookup(_core_def(method, True), core.name, True) if method in names else Lookup(None, None, True)
    if singleton:
        return _singleton_lookup(index, cls, method)
    return _instance_lookup(index, cls.name, method)


_MODULE_SIDE = CORE["Module"].instance | CORE["Class"].instance | CORE["Kernel"].instance


def public_names(index: ApiIndex, class_name: str, *, singleton: bool) -> list[str]:
    """Public method names defined in the gem for this class and its in-gem ancestors."""
    cls = find_class(index, class_name)
    if cls is None:
        return []
    names: set[str] = set()
    chain = _singleton_chain(index, cls) if singleton else ((a, False) for a in _full_instance_chain(index, cls.name))
    for anc, own in chain:
        if isinstance(anc, ClassDef):
            table = anc.singleton_methods if own else anc.instance_methods
            names.update(n for n, m in table.items() if m.visibility == "public")
    if singleton and cls.kind == "class":
        names.add("new")
    return sorted(names)


def suggest(index: ApiIndex, class_name: str, method: str, *, singleton: bool, limit: int = 3) -> list[str]:
    """Nearest real public names, for "did you mean `content`?"."""
    candidates = public_names(index, class_name, singleton=singleton)
    return difflib.get_close_matches(method, candidates, n=limit, cutoff=0.6)


def public_constants(index: ApiIndex) -> list[str]:
    """Every class/module and constant reachable from outside (private_constant excluded)."""
    hidden = {f"{c.name}::{n}" for c in index.classes.values() for n in c.private_constants}
    names = set(index.classes)
    for cls in index.classes.values():
        names.update(f"{cls.name}::{const}" for const in cls.constants)
    return sorted(n for n in names if n not in hidden and not any(n.startswith(f"{h}::") for h in hidden))
