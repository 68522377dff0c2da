"""Mock objects that stand in for a gem value: do the methods they are told to answer exist on it?

A mock is a local bound to `Minitest::Mock.new`, Mocha `mock(...)`/`stub(...)` or RSpec `double(...)`
(`instance_double` is left out: RSpec verifies those itself). What it imitates comes from where it is
injected: returned by a stubbed gem method (`RubyLLM.stub(:chat, m)`, `RubyLLM::Chat.stubs(:new).returns(m)`,
`allow(RubyLLM).to receive(:chat).and_return(m)`) it imitates that method's real return type (Chat), and
a mock returned from an expected method of such a mock (`chat.expect(:ask, reply)`) imitates that
method's return type (Message). Every method it is told to answer (`expect(:m)`, `expects/stubs(:m)`,
`allow(m).to receive(:x)`, hash keys of `mock(a: 1)`/`double("x", a: 1)`) must exist there.
Invariants: names are bound per enclosing block or method; a mismatch needs a certain absence in the
gem index; anything not understood is skipped, never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from shipbench.audit.ruby.infer_model import RType, relative
from shipbench.audit.ruby.infer_types import FileTypes
from shipbench.audit.ruby.parse import Node, ParsedSource, line_of, of_type
from shipbench.audit.ruby.resolve_api import GemApi
from shipbench.audit.ruby.verify_types import FakeMismatch

_SCOPES = ("do_block", "block", "method", "singleton_method", "lambda")
_MOCK_BUILDERS = frozenset({"mock", "stub", "double", "spy"})
_EXPECTING = frozenset({"expect", "expects", "stubs"})
_RETURNING = frozenset({"returns", "and_return"})
_MAX_ROUNDS = 3


@dataclass
class _Mock:
    name: str
    answers: list[tuple[str, int]] = field(default_factory=list)  # (method, line)
    returns: dict[str, str] = field(default_factory=dict)  # expected method -> mock name it returns
    imitates: RType | None = None


def mock_mismatches(parsed: ParsedSource, types: FileTypes, api: GemApi) -> list[FakeMismatch]:
    if api.index is None:
        return []
    mocks = _find_mocks(parsed)
    if not mocks:
        return []
    _find_answers(parsed, mocks)
    _find_injections(parsed, types, api, mocks)
    _propagate(api, mocks)
    return [m for mock in mocks.values() for m in _mismatches(parsed, api, mock)]


def _scope_id(node: Node) -> int:
    parent = node.parent
    while parent is not None and parent.type not in _SCOPES:
        parent = parent.parent
    return parent.id if parent is not None else -1


def _key(parsed: ParsedSource, ident: Node) -> tuple[int, str]:
    return (_scope_id(ident), parsed.text(ident))


def _method(parsed: ParsedSource, call: Node) -> str:
    name = call.child_by_field_name("method")
    return parsed.text(name) if name is not None else ""


def _args(call: Node) -> list[Node]:
    args = call.child_by_field_name("arguments")
    return [a for a in args.named_children if a.type != "comment"] if args is not None else []


def _symbol(parsed: ParsedSource, node: Node | None) -> str | None:
    if node is not None and node.type == "simple_symbol":
        return parsed.text(node).lstrip(":")
    return None


def _hash_keys(parsed: ParsedSource, nodes: list[Node]) -> list[str]:
    keys: list[str] = []
    for node in nodes:
        pairs = [node] if node.type == "pair" else (node.named_children if node.type == "hash" else [])
        for pair in pairs:
            key = pair.child_by_field_name("key") if pair.type == "pair" else None
            if key is not None:
                keys.append(parsed.text(key).lstrip(":").rstrip(":").strip("'\""))
    return keys


def _is_mock_builder(parsed: ParsedSource, value: Node) -> bool:
    if value.type != "call":
        return False
    recv = value.child_by_field_name("receiver")
    method = _method(parsed, value)
    if recv is not None:
        return method == "new" and parsed.text(recv).lstrip(":") == "Minitest::Mock"
    return method in _MOCK_BUILDERS


def _find_mocks(parsed: ParsedSource) -> dict[tuple[int, str], _Mock]:
    mocks: dict[tuple[int, str], _Mock] = {}
    for assign in of_type(parsed.root, "assignment"):
        left, right = assign.child_by_field_name("left"), assign.child_by_field_name("right")
        if left is None or right is None or left.type != "identifier" or not _is_mock_builder(parsed, right):
            continue
        mock = mocks.setdefault(_key(parsed, left), _Mock(parsed.text(left)))
        mock.answers += [(k, line_of(right)) for k in _hash_keys(parsed, _args(right))]
    return mocks


def _mock_of(parsed: ParsedSource, node: Node | None, mocks: dict[tuple[int, str], _Mock]) -> _Mock | None:
    if node is None or node.type != "identifier":
        return None
    return mocks.get(_key(parsed, node))


def _find_answers(parsed: ParsedSource, mocks: dict[tuple[int, str], _Mock]) -> None:
    for call in of_type(parsed.root, "call"):
        method = _method(parsed, call)
        if method in _EXPECTING:
            mock = _mock_of(parsed, call.child_by_field_name("receiver"), mocks)
            args = _args(call)
            name = _symbol(parsed, args[0]) if args else None
            if mock is None:
                continue
            if name is not None:
                mock.answers.append((name, line_of(call)))
                returned = _mock_of(parsed, args[1] if len(args) > 1 else _returns_arg(parsed, call), mocks)
                if returned is not None:
                    mock.returns[name] = returned.name
            mock.answers += [(k, line_of(call)) for k in _hash_keys(parsed, args)]
        elif method in ("receive", "receive_messages") and call.child_by_field_name("receiver") is None:
            subject = _rspec_subject(parsed, call)
            mock = _mock_of(parsed, subject, mocks)
            if mock is not None:
                args = _args(call)
                names = [_symbol(parsed, args[0])] if method == "receive" and args else _hash_keys(parsed, args)
                mock.answers += [(n, line_of(call)) for n in names if n]


def _returns_arg(parsed: ParsedSource, stub_call: Node) -> Node | None:
    """`x.expects(:m).returns(value)` / `receive(:m).and_return(value)`: the value node."""
    parent = stub_call.parent
    while parent is not None and parent.type == "call" and _method(parsed, parent) in _MODIFIERS:
        parent = parent.parent
    if parent is not None and parent.type == "call" and _method(parsed, parent) in _RETURNING:
        args = _args(parent)
        return args[0] if args else None
    return None


def _rspec_subject(parsed: ParsedSource, receive: Node) -> Node | None:
    """`allow(subject).to receive(:m)`: the subject node."""
    current = receive.parent
    for _ in range(6):
        if current is None:
            return None
        if current.type == "call" and _method(parsed, current) in ("to", "not_to", "to_not"):
            subject_call = current.child_by_field_name("receiver")
            if subject_call is None or subject_call.type != "call":
                return None
            if _method(parsed, subject_call) not in ("allow", "expect"):
                return None
            args = _args(subject_call)
            return args[0] if args else None
        current = current.parent
    return None


def _find_injections(parsed: ParsedSource, types: FileTypes, api: GemApi, mocks: dict[tuple[int, str], _Mock]) -> None:
    for call in of_type(parsed.root, "call"):
        method = _method(parsed, call)
        args = _args(call)
        if method == "stub" and len(args) >= 2:  # minitest: Target.stub(:m, mock) { ... }
            stubbed, target = _symbol(parsed, args[0]), call.child_by_field_name("receiver")
            value = args[1]
        elif method in _RETURNING and args:  # mocha / rspec: ... .returns(mock) / .and_return(mock)
            stubbed, target = _stubbed_by(parsed, call)
            value = args[0]
        else:
            continue
        mock = _mock_of(parsed, value, mocks)
        rtype = types.type_of(target) if target is not None else None
        if mock is None or stubbed is None or rtype is None or rtype.kind not in ("const", "instance"):
            continue
        result = api.result_type(rtype, stubbed)
        if result is not None and result.kind == "instance":
            mock.imitates = result


_MODIFIERS = frozenset(
    {"with", "once", "twice", "never", "times", "at_least", "at_most", "at_least_once", "at_most_once",
     "exactly", "in_sequence", "ordered", "with_no_arguments", "with_any_args"}
)  # fmt: skip


def _past_modifiers(parsed: ParsedSource, node: Node | None) -> Node | None:
    """`T.expects(:m).with(x).once` -> the `T.expects(:m)` call: expectation modifiers change no type."""
    while node is not None and node.type == "call" and _method(parsed, node) in _MODIFIERS:
        node = node.child_by_field_name("receiver")
    return node


def _stubbed_by(parsed: ParsedSource, returning: Node) -> tuple[str | None, Node | None]:
    """For `T.stubs(:m).returns(..)` or `allow(T).to receive(:m).and_return(..)`: (m, T)."""
    inner = _past_modifiers(parsed, returning.child_by_field_name("receiver"))
    if inner is None or inner.type != "call":
        return None, None
    method = _method(parsed, inner)
    args = _args(inner)
    name = _symbol(parsed, args[0]) if args else None
    if method in ("stubs", "expects"):
        return name, inner.child_by_field_name("receiver")
    if method == "receive" and inner.child_by_field_name("receiver") is None:
        return name, _rspec_subject(parsed, inner)
    return None, None


def _propagate(api: GemApi, mocks: dict[tuple[int, str], _Mock]) -> None:
    """A mock returned from an expected method of an imitating mock imitates that method's return type."""
    by_name: dict[str, list[_Mock]] = defaultdict(list)
    for mock in mocks.values():
        by_name[mock.name].append(mock)
    for _ in range(_MAX_ROUNDS):
        changed = False
        for mock in mocks.values():
            if mock.imitates is None:
                continue
            for method, returned in mock.returns.items():
                result = api.result_type(mock.imitates, method)
                for target in by_name[returned]:
                    if target.imitates is None and result is not None and result.kind == "instance":
                        target.imitates, changed = result, True
        if not changed:
            return


def _mismatches(parsed: ParsedSource, api: GemApi, mock: _Mock) -> list[FakeMismatch]:
    if mock.imitates is None:
        return []
    real = mock.imitates.name
    out: list[FakeMismatch] = []
    for method, line in dict.fromkeys(mock.answers):
        found = api.lookup(real, method, False)
        if found.method is not None or not found.certain or api.is_core(mock.imitates, method):
            continue
        hint = api.suggestions(real, method, False)
        short = relative(real, api.namespace) or real
        detail = f"the mock `{mock.name}` stands in for {short}, which has no method {method}"
        detail += f"; did you mean {', '.join(hint)}?" if hint else ""
        out.append(
            FakeMismatch(
                path=parsed.rel, line=line, kind="fake_method", name=f"{mock.name} (mock {short})#{method}",
                real=short, detail=detail,
            )
        )  # fmt: skip
    return out
