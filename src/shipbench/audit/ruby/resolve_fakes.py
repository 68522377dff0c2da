"""Test doubles that imitate an API the gem does not have: fake classes and stubs (tests only).

A fake class is any class a test file defines that is not itself a test case (whatever it is called)
and that defines a marker method of the gem's surface (ask, say, complete, content, add_message,
with_instructions); the gem class it imitates is the one sharing the most method names with it.
What a fake's method returns where the real one returns a known class (Chat#ask -> Message) is
checked against that class in turn (test classes, Structs, OpenStructs; see fake_shapes), and a fake
method whose signature no real call can share is a `fake_signature` (see fake_signatures).
Mock objects injected as a stubbed gem method's result are checked by fake_mocks.
Stubs are Minitest `X.stub(:m)`, Mocha `X.stubs/expects(:m)` and `X.any_instance.stubs(:m)`, RSpec
`allow(X).to receive(:m)` / `allow_any_instance_of(X)` and `stub_const("RubyLLM::X")`.
Invariants: only called with a gem index in hand; a mismatch is reported only when the lookup proves
absence (certain), never for Ruby core methods; one file's oddities never raise out of here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shipbench.audit.ruby.api_model import MethodDef
from shipbench.audit.ruby.api_params import params_of
from shipbench.audit.ruby.fake_mocks import mock_mismatches
from shipbench.audit.ruby.fake_shapes import (
    Returning,
    Shape,
    file_shapes,
    read_class_body,
    returned_elements,
    returned_shapes,
)
from shipbench.audit.ruby.fake_signatures import format_params, signature_problem
from shipbench.audit.ruby.infer_model import RType, display_call, relative
from shipbench.audit.ruby.infer_types import FileTypes
from shipbench.audit.ruby.parse import Node, ParsedSource, line_of, walk
from shipbench.audit.ruby.resolve_api import GemApi
from shipbench.audit.ruby.verify_types import FakeMismatch

TEST_BASES = re.compile(r"(?:^|::)(?:Test|TestCase|IntegrationTest|SystemTestCase|Spec)$|^Minitest::")
MARKERS = frozenset({"ask", "say", "complete", "content", "add_message", "with_instructions"})
NOT_API = frozenset({"initialize", "method_missing", "respond_to_missing?", "to_s", "inspect", "==", "to_h"})
STUB_METHODS = frozenset({"stub", "stubs", "expects", "stub_any_instance"})
RSPEC_SUBJECTS = {
    "allow": False, "expect": False, "allow_any_instance_of": True, "expect_any_instance_of": True,
}  # fmt: skip
RSPEC_TO = frozenset({"to", "not_to", "to_not"})
MAX_RETURN_DEPTH = 3  # fake -> what its methods return -> what theirs return ...


def find_fakes(parsed: ParsedSource, types: FileTypes, api: GemApi) -> list[FakeMismatch]:
    shapes = file_shapes(parsed)
    out: list[FakeMismatch] = []
    for node in walk(parsed.root):
        if node.type == "class":
            out += _fake_class_mismatches(parsed, node, api, shapes)
        elif node.type == "call":
            out += _stub_mismatches(parsed, node, types, api)
    out += mock_mismatches(parsed, types, api)
    unique = {(f.kind, f.name, f.line): f for f in out}
    return list(unique.values())


# ---- fake classes


@dataclass
class _Walk:
    """One file's fake checks: its shapes and the (shape, real class) pairs already compared."""

    parsed: ParsedSource
    api: GemApi
    shapes: dict[str, Shape]
    seen: set[tuple[str, str]] = field(default_factory=set)


def _fake_class_mismatches(
    parsed: ParsedSource, node: Node, api: GemApi, shapes: dict[str, Shape]
) -> list[FakeMismatch]:
    fake = _read_fake(parsed, node)
    if fake is None:
        return []
    real = _imitated(fake, api)
    if real is None:
        return []
    return _compare(_Walk(parsed, api, shapes), fake, real, "", 0)


def _compare(walk_: _Walk, shape: Shape, real: str, via: str, depth: int) -> list[FakeMismatch]:
    """`shape`'s methods against `real`'s: absent ones, impossible signatures, then what they return.
    The fake itself (depth 0) is judged by its defs only: its readers are usually the test's spy
    accessors (`fake.asked`); a returned object's readers are what the code under test reads."""
    if (shape.name, real) in walk_.seen or depth > MAX_RETURN_DEPTH:
        return []
    walk_.seen.add((shape.name, real))
    out: list[FakeMismatch] = []
    members = shape.members() if depth else shape.defs
    for method, def_node in sorted(members.items()):
        if method in NOT_API or method.endswith("="):
            continue
        found = walk_.api.lookup(real, method, False)
        if found.method is None:
            out += _absent(walk_, shape, real, method, def_node, via)
        elif def_node.type == "method":
            out += _signature(walk_, shape, real, found.method, found.owner, def_node)
            out += _returned(walk_, shape, real, method, def_node, depth)
    return out


def _absent(walk_: _Walk, shape: Shape, real: str, method: str, node: Node, via: str) -> list[FakeMismatch]:
    api = walk_.api
    found = api.lookup(real, method, False)
    if not found.certain or api.is_core(RType.instance(real), method):
        return []
    rel = relative(real, api.namespace)
    hint = api.suggestions(real, method, False)
    detail = f"{rel} has no method {method}" + (f"; did you mean {', '.join(hint)}?" if hint else "")
    detail += f" ({via} returns it where the real method returns a {rel})" if via else ""
    return [
        FakeMismatch(
            path=walk_.parsed.rel, line=line_of(node), kind="fake_method", name=f"{shape.name}#{method}",
            real=rel, detail=detail,
        )
    ]  # fmt: skip


def _signature(
    walk_: _Walk, shape: Shape, real: str, method: MethodDef, owner: str | None, def_node: Node
) -> list[FakeMismatch]:
    api = walk_.api
    problem = signature_problem(walk_.parsed, def_node, method, api.effective(method, owner))
    if not problem:
        return []
    rel = relative(real, api.namespace)
    name = f"{shape.name}#{method.name}"
    fake_sig = format_params(params_of(walk_.parsed, def_node))
    detail = f"{name}({fake_sig}) {problem}; real: {rel}#{method.name}({format_params(method.params)})"
    return [
        FakeMismatch(
            path=walk_.parsed.rel, line=line_of(def_node), kind="fake_signature", name=name, real=rel,
            detail=detail,
        )
    ]  # fmt: skip


def _returned(walk_: _Walk, shape: Shape, real: str, method: str, def_node: Node, depth: int) -> list[FakeMismatch]:
    """What the double's method returns stands in for what the real one returns: compare those too."""
    api = walk_.api
    result = api.result_type(RType.instance(real), method)
    if result is None or result.kind not in ("instance", "array") or api.find_class(result.name) is None:
        return []
    label = f"{shape.name}#{method}"
    owner = shape.node if shape.node.type == "class" else None
    ret = Returning(def_node, owner, label, api.namespace)
    reader = returned_shapes if result.kind == "instance" else returned_elements
    out: list[FakeMismatch] = []
    for returned in reader(walk_.parsed, walk_.shapes, ret):
        if returned.name != shape.name:
            out += _compare(walk_, returned, result.name, label, depth + 1)
    return out


def _read_fake(parsed: ParsedSource, node: Node) -> Shape | None:
    name_node = node.child_by_field_name("name")
    name = parsed.text(name_node).split("::")[-1] if name_node is not None else ""
    superclass = node.child_by_field_name("superclass")
    base = parsed.text(superclass).lstrip("<").strip() if superclass is not None else ""
    if not name or TEST_BASES.search(base) or name.endswith("Test"):
        return None  # a test case, not a double
    fake = Shape(name=name, node=node)
    read_class_body(parsed, fake, node)
    return fake if (set(fake.defs) | set(fake.attrs)) & MARKERS else None


def _imitated(fake: Shape, api: GemApi) -> str | None:
    """The gem class sharing the most (non-core) method names with the fake; ties go to the class with
    more marker methods, then to the one the fake's name mentions, then to the one defining them itself
    (a facade forwarding them, like Agent's def_delegators to Chat, does not count as defining them)."""
    if api.index is None:
        return None
    names = sorted(set(fake.defs) | set(fake.attrs))
    best: tuple[int, int, int, int, str] | None = None
    for cls in api.index.classes.values():
        if cls.kind != "class" or not api.owns(cls.name):
            continue
        owners = {n: _gem_owner(api, cls.name, n) for n in names}
        overlap = sum(1 for o in owners.values() if o is not None)
        markers = sum(1 for n, o in owners.items() if o is not None and n in MARKERS)
        own = sum(1 for n, o in owners.items() if o == cls.name and not _delegates(api, cls.name, n))
        short = cls.name.rpartition("::")[2]
        score = (overlap, markers, 1 if short and short in fake.name else 0, own, cls.name)
        if overlap and (best is None or score[:4] > best[:4]):
            best = score
    return best[4] if best is not None else None


def _delegates(api: GemApi, class_name: str, method: str) -> bool:
    found = api.lookup(class_name, method, False)
    return found.method is not None and found.method.origin == "delegator"


def _gem_owner(api: GemApi, class_name: str, method: str) -> str | None:
    """The gem class defining `method` for instances of `class_name` (None if absent or Ruby core)."""
    found = api.lookup(class_name, method, False)
    if found.method is None or found.owner is None or api.find_class(found.owner) is None:
        return None
    return found.owner


# ---- stubs


def _stub_mismatches(parsed: ParsedSource, call: Node, types: FileTypes, api: GemApi) -> list[FakeMismatch]:
    method_node = call.child_by_field_name("method")
    method = parsed.text(method_node) if method_node is not None else ""
    if method == "stub_const":
        return _stub_const(parsed, call, api)
    if method in STUB_METHODS:
        recv = call.child_by_field_name("receiver")
        target = _stub_target(parsed, recv, types) if recv is not None else None
        return _check_stubbed(parsed, call, target, _symbol_args(parsed, call), api)
    if method in ("receive", "receive_messages") and call.child_by_field_name("receiver") is None:
        target = _rspec_target(parsed, call, types)
        return _check_stubbed(parsed, call, target, _symbol_args(parsed, call), api)
    return []


def _stub_target(parsed: ParsedSource, recv: Node, types: FileTypes) -> RType | None:
    """The type whose method is stubbed: `X.any_instance` -> instances of X, else the receiver's type."""
    if recv.type == "call":
        inner_method = recv.child_by_field_name("method")
        inner_recv = recv.child_by_field_name("receiver")
        if inner_method is not None and parsed.text(inner_method) == "any_instance" and inner_recv is not None:
            owner = types.type_of(inner_recv)
            return RType.instance(owner.name) if owner is not None and owner.kind == "const" else owner
    return types.type_of(recv)


def _rspec_target(parsed: ParsedSource, receive: Node, types: FileTypes) -> RType | None:
    current: Node | None = receive.parent
    for _ in range(8):
        if current is None:
            return None
        method = current.child_by_field_name("method") if current.type == "call" else None
        if method is not None and parsed.text(method) in RSPEC_TO:
            subject = current.child_by_field_name("receiver")
            break
        current = current.parent
    else:
        return None
    if subject is None or subject.type != "call" or (subj_method := subject.child_by_field_name("method")) is None:
        return None
    any_instance = RSPEC_SUBJECTS.get(parsed.text(subj_method))
    args = subject.child_by_field_name("arguments")
    if any_instance is None or args is None or not args.named_children:
        return None
    owner = types.type_of(args.named_children[0])
    if any_instance and owner is not None and owner.kind == "const":
        return RType.instance(owner.name)
    return owner


def _symbol_args(parsed: ParsedSource, call: Node) -> list[str]:
    args = call.child_by_field_name("arguments")
    names: list[str] = []
    for arg in args.named_children if args is not None else []:
        if arg.type == "simple_symbol":
            names.append(parsed.text(arg).lstrip(":"))
        elif arg.type == "pair" and (key := arg.child_by_field_name("key")) is not None:
            names.append(parsed.text(key).lstrip(":").rstrip(":"))
        if names and arg.type == "simple_symbol":
            break  # stub(:m, value): only the first symbol names a method
    return names


def _check_stubbed(
    parsed: ParsedSource, call: Node, target: RType | None, methods: list[str], api: GemApi
) -> list[FakeMismatch]:
    if target is None or not methods or target.kind == "array" or api.index is None:
        return []
    if target.kind == "opaque":
        if "#" in target.name or "." in target.name:
            return []
        return [_missing_constant(parsed, call, target.name, api)]
    out: list[FakeMismatch] = []
    singleton = target.kind == "const"
    for method in methods:
        found = api.lookup(target.name, method, singleton)
        if found.method is not None or not found.certain or api.is_core(target, method):
            continue
        hint = api.suggestions(target.name, method, singleton)
        detail = f"{target.name} has no {'class ' if singleton else ''}method {method}"
        detail += f"; did you mean {', '.join(hint)}?" if hint else ""
        out.append(
            FakeMismatch(
                path=parsed.rel, line=line_of(call), kind="stubbed_method",
                name=display_call(target, method, api.namespace), real=relative(target.name, api.namespace) or
                target.name, detail=detail,
            )
        )  # fmt: skip
    return out


def _stub_const(parsed: ParsedSource, call: Node, api: GemApi) -> list[FakeMismatch]:
    args = call.child_by_field_name("arguments")
    first = args.named_children[0] if args is not None and args.named_children else None
    if first is None or first.type != "string":
        return []
    name = parsed.text(first).strip("'\"").lstrip(":")
    if not api.owns(name) or name == api.namespace or api.foreign_constant(name) is not None:
        return []
    if api.constant_location(name) is not None:
        return []
    return [_missing_constant(parsed, call, name, api)]


def _missing_constant(parsed: ParsedSource, call: Node, name: str, api: GemApi) -> FakeMismatch:
    hint = api.constant_suggestions(name)
    detail = f"{name} does not exist in {api.gem}" + (f"; did you mean {', '.join(hint)}?" if hint else "")
    return FakeMismatch(
        path=parsed.rel, line=line_of(call), kind="missing_constant", name=name,
        real=relative(hint[0], api.namespace) if hint else "", detail=detail,
    )  # fmt: skip
