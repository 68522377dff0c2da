"""Argument checking (Ruby 3 semantics) and verdicts against hand-built API indexes."""

from __future__ import annotations

import pytest

from shipbench.audit.ruby.api_model import ApiIndex, ClassDef, Location, MethodDef, Param
from shipbench.audit.ruby.infer_types import FileTypes
from shipbench.audit.ruby.parse import of_type, parse_ruby
from shipbench.audit.ruby.resolve_api import GemApi
from shipbench.audit.ruby.resolve_args import CallArgs, check_args, read_args
from shipbench.audit.ruby.resolve_calls import FileCalls, ProjectDefs


def p(*spec: str) -> list[Param]:
    """'req:a', 'opt:b', 'rest', 'keyreq:k', 'key:k', 'keyrest', 'block', 'fwd', 'nokey'."""
    out = []
    for item in spec:
        kind, _, name = item.partition(":")
        out.append(Param(kind=kind, name=name or None))  # type: ignore[arg-type]
    return out


def args_of(code: str) -> CallArgs:
    parsed = parse_ruby("x.rb", code.encode())
    return read_args(parsed, next(of_type(parsed.root, "call")))


@pytest.mark.parametrize(
    ("params", "code", "status", "detail"),
    [
        (p("req:m"), "o.f(role: :user, content: 'x')", "ok", ""),  # braceless pairs -> one positional Hash
        (p("req:m"), "o.f({role: :user})", "ok", ""),
        (p("req:m"), "o.f", "bad", "given 0, expected 1"),
        (p("req:m", "key:provider"), "o.f('m', provider: :x)", "ok", ""),
        (p("req:m", "key:provider"), "o.f('m', assume: true)", "bad", "unknown keyword: assume"),
        (p("keyreq:model"), "o.f", "bad", "missing keyword: model"),
        (p("keyreq:model"), "o.f(model:)", "ok", ""),
        (p("keyrest"), "o.f(anything: 1, more: 2)", "ok", ""),
        (p("opt:a", "opt:b"), "o.f(1, 2, 3)", "bad", "given 3, expected 0..2"),
        (p("rest"), "o.f(1, 2, 3)", "ok", ""),
        (p("req:a"), "o.f(*list)", "ok", ""),
        (p(), "o.f(1, *list)", "unknown", "given 1, expected 0"),
        (p("key:a"), "o.f(**opts)", "ok", ""),
        (p("key:a"), "o.f(b: 1, **opts)", "unknown", "unknown keyword: b"),
        (p("nokey"), "o.f(a: 1)", "bad", "no keywords accepted"),
        (p("fwd"), "o.f(1, a: 2)", "ok", ""),
        (p("key:a"), "o.f('a' => 1)", "unknown", ""),
    ],
)
def test_check_args(params: list[Param], code: str, status: str, detail: str) -> None:
    result = check_args(params, args_of(code))
    assert result.status == status
    assert detail in result.detail


def test_read_args_sees_blocks_in_every_form() -> None:
    assert args_of("o.f(1) { |x| x }").block
    assert args_of("o.f 1 do |x| x end").block
    assert args_of("o.f(&blk)").block
    assert args_of("def g(&) = o.f(&)").block
    assert not args_of("o.f(1, a: 2)").block
    assert args_of("o.f(1, a: 2, :b => 3)") == CallArgs(positional=1, keywords=("a", "b"))


def _index() -> ApiIndex:
    loc = Location(path="lib/g.rb", line=3)
    open_cls = ClassDef(name="G::Open", kind="class", open_instance=True, locations=[loc])
    fwd = MethodDef(name="make", params=p("fwd"), singleton=True, forwards_to="G::Nowhere#initialize", location=loc)
    mod = ClassDef(name="G", kind="module", singleton_methods={"make": fwd, "open": MethodDef(
        name="open", singleton=True, returns="G::Open", location=loc)}, locations=[loc])  # fmt: skip
    return ApiIndex(gem="g", version="1.0", root="/g", classes={"G": mod, "G::Open": open_cls})


def _calls(code: str) -> list[tuple[str, str, str]]:
    api = GemApi(gem="g", namespace="G", index=_index(), version="1.0")
    parsed = parse_ruby("app/x.rb", code.encode())
    found = FileCalls(parsed, FileTypes(parsed, [api]), ProjectDefs(), in_test=False).run()
    return [(c.call, c.verdict, c.detail) for c in found]


def test_open_class_and_unresolvable_forwarding_are_unverifiable_not_missing() -> None:
    calls = _calls("G.open.whatever(1)\nG.make(1, 2)\nG.absent\n")
    assert ("Open#whatever", "unverifiable") in [(c, v) for c, v, _ in calls]
    make = next(c for c in calls if c[0] == "G.make")
    assert make[1] == "unverifiable" and "G::Nowhere#initialize" in make[2]
    assert ("G.absent", "missing") in [(c, v) for c, v, _ in calls]
