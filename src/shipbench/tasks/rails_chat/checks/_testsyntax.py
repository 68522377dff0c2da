"""Syntax of Ruby test files (Minitest, minitest/spec, RSpec): test cases, what runs with them, and
whether their assertions could ever fail.

Invariants: pure functions of parsed trees, no file reads; a test case is a `def test_*` or a
receiver-less `test/it/specify/...` call with a block; a test's scope is its body plus the setup
blocks around it and the helpers it calls (by name, transitively), each paired with its own file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, line_of, of_type, walk
from shipbench.tasks.rails_chat.checks._common import class_name, def_name, method_name


def words(text: str) -> frozenset[str]:
    """A set of names written as whitespace-separated words."""
    return frozenset(text.split())


TEST_BLOCK_METHODS = frozenset({"test", "it", "specify", "scenario", "example", "its"})
SETUP_METHODS = frozenset({"setup", "before", "let", "let!", "subject", "around", "given", "background"})
SETUP_DEFS = frozenset({"setup", "before_setup", "after_setup", "before_each"})
SKIP_METHODS = frozenset({"skip", "pending", "xit"})
FAKE_FACTORIES = frozenset({"Struct", "Class", "Data", "OpenStruct"})

Scoped = tuple[ParsedSource, Node]


@dataclass(frozen=True)
class TestCase:
    """One test: a `def test_*` or a `test "..." do` / `it "..." do` call, and its body."""

    parsed: ParsedSource
    node: Node
    body: Node | None
    name: str

    @property
    def line(self) -> int:
        return line_of(self.node)


@dataclass
class TestFile:
    parsed: ParsedSource
    cases: list[TestCase]
    setups: list[Node]  # setup/before/let blocks and `def setup` methods
    helpers: dict[str, list[Node]]  # non-test method defs outside fake classes, by name


@dataclass
class TestSuite:
    """Every test file of a project, indexed once."""

    files: list[TestFile]
    fake_classes: dict[str, Scoped] = field(default_factory=dict)  # name -> (file, class or assignment)

    @property
    def cases(self) -> list[TestCase]:
        return [c for f in self.files for c in f.cases]

    def file_of(self, case: TestCase) -> TestFile:
        return next(f for f in self.files if f.parsed.rel == case.parsed.rel)

    def global_setups(self) -> list[Scoped]:
        """Setup blocks of support files (test_helper, spec/support): they run around every test."""
        return [(f.parsed, s) for f in self.files if not f.cases for s in f.setups]

    def helpers_named(self, name: str, near: ParsedSource) -> list[Scoped]:
        local = [(f.parsed, n) for f in self.files if f.parsed.rel == near.rel for n in f.helpers.get(name, [])]
        if local:
            return local
        return [(f.parsed, n) for f in self.files if not f.cases for n in f.helpers.get(name, [])]


def build_suite(sources: list[ParsedSource]) -> TestSuite:
    suite = TestSuite(files=[])
    for parsed in sources:
        suite.files.append(_index_file(parsed))
        suite.fake_classes.update({name: (parsed, node) for name, node in fake_classes(parsed)})
    return suite


def _index_file(parsed: ParsedSource) -> TestFile:
    cases = test_cases(parsed)
    setups: list[Node] = []
    helpers: dict[str, list[Node]] = {}
    for node in of_type(parsed.root, "call", "method"):
        if node.type == "call" and _is_setup_call(parsed, node):
            setups.append(node)
        elif node.type == "method":
            name = def_name(parsed, node)
            if name in SETUP_DEFS:
                setups.append(node)
            elif not name.startswith("test_") and not _inside_fake_class(parsed, node):
                helpers.setdefault(name, []).append(node)
    return TestFile(parsed=parsed, cases=cases, setups=setups, helpers=helpers)


def _is_setup_call(parsed: ParsedSource, node: Node) -> bool:
    return (
        node.child_by_field_name("receiver") is None
        and node.child_by_field_name("block") is not None
        and method_name(parsed, node) in SETUP_METHODS
    )


def test_cases(parsed: ParsedSource) -> list[TestCase]:
    found: list[TestCase] = []
    for node in of_type(parsed.root, "call", "method"):
        if node.type == "method":
            name = def_name(parsed, node)
            if name.startswith("test_"):
                found.append(TestCase(parsed, node, node.child_by_field_name("body"), name))
            continue
        block = node.child_by_field_name("block")
        if block is None or node.child_by_field_name("receiver") is not None:
            continue
        if method_name(parsed, node) not in TEST_BLOCK_METHODS:
            continue
        found.append(TestCase(parsed, node, block.child_by_field_name("body"), _case_title(parsed, node)))
    return found


def _case_title(parsed: ParsedSource, call: Node) -> str:
    args = call.child_by_field_name("arguments")
    first = args.named_children[0] if args is not None and args.named_children else None
    return parsed.text(first).strip("\"'") if first is not None else ""


def is_test_class(parsed: ParsedSource, klass: Node) -> bool:
    name = class_name(parsed, klass)
    sup = klass.child_by_field_name("superclass")
    sup_text = parsed.text(sup) if sup is not None else ""
    return any(word in text for word in ("Test", "Spec") for text in (name, sup_text))


def fake_classes(parsed: ParsedSource) -> Iterator[tuple[str, Node]]:
    """Classes a test file defines that are not test classes (FakeChat, StubLLM, DummyClient...),
    and constants assigned a `Struct.new` / `Class.new` / `Data.define`."""
    for node in of_type(parsed.root, "class", "assignment"):
        if not node.is_named:  # the `class` keyword token
            continue
        if node.type == "class":
            if not is_test_class(parsed, node):
                yield class_name(parsed, node).rsplit("::", 1)[-1], node
            continue
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is None or right is None or left.type != "constant" or right.type != "call":
            continue
        recv = right.child_by_field_name("receiver")
        if recv is not None and parsed.text(recv).lstrip(":") in FAKE_FACTORIES:
            yield parsed.text(left), node


def _inside_fake_class(parsed: ParsedSource, node: Node) -> bool:
    klass = enclosing(node, "class")
    return klass is not None and not is_test_class(parsed, klass)


# ---------------------------------------------------------------- scopes


def _contains(outer: Node, inner: Node) -> bool:
    return outer.start_byte <= inner.start_byte and inner.end_byte <= outer.end_byte


def _container(node: Node) -> Node | None:
    return enclosing(node, "class", "module", "do_block", "block", "program")


def setups_for(suite: TestSuite, case: TestCase, *, global_ones: bool = True) -> list[Scoped]:
    """Setup blocks of the test's own file whose container holds the test, then global ones."""
    own = [
        (case.parsed, s)
        for s in suite.file_of(case).setups
        if (box := _container(s)) is not None and _contains(box, case.node)
    ]
    return own + suite.global_setups() if global_ones else own


def called_helpers(suite: TestSuite, roots: list[Scoped], limit: int = 50) -> list[Scoped]:
    """Helper methods reached by name from `roots`, transitively (bounded)."""
    seen: set[tuple[str, int]] = set()
    out: list[Scoped] = []
    queue = list(roots)
    while queue and len(out) < limit:
        parsed, node = queue.pop()
        for name in _called_names(parsed, node):
            for hp, hn in suite.helpers_named(name, parsed):
                key = (hp.rel, hn.start_byte)
                if key not in seen:
                    seen.add(key)
                    out.append((hp, hn))
                    queue.append((hp, hn))
    return out


def _called_names(parsed: ParsedSource, node: Node) -> set[str]:
    names: set[str] = set()
    for n in of_type(node, "identifier"):
        parent = n.parent
        if parent is not None and parent.type == "call" and parent.child_by_field_name("method") == n:
            recv = parent.child_by_field_name("receiver")
            if recv is not None and recv.type != "self":
                continue
        names.add(parsed.text(n))
    return names


def body_scope(suite: TestSuite, case: TestCase) -> list[Scoped]:
    """The test body and the helpers it calls: where its assertions live."""
    if case.body is None:
        return []
    roots: list[Scoped] = [(case.parsed, case.body)]
    return roots + called_helpers(suite, roots)


def full_scope(suite: TestSuite, case: TestCase, *, global_setups: bool = True) -> list[Scoped]:
    """Everything that runs with the test: body, setups, the helpers either calls, and for RSpec the
    arguments of the enclosing `describe`/`context` calls (`RSpec.describe ChatService`). Without
    `global_setups`, what the test itself chose to run (support-file setups left out)."""
    roots: list[Scoped] = [(case.parsed, case.body)] if case.body is not None else []
    roots += setups_for(suite, case, global_ones=global_setups)
    roots += [(case.parsed, a) for a in _describe_args(case)]
    return roots + called_helpers(suite, roots)


def _describe_args(case: TestCase) -> Iterator[Node]:
    node = case.node.parent
    while node is not None:
        if node.type == "call" and method_name(case.parsed, node) in ("describe", "context", "feature"):
            args = node.child_by_field_name("arguments")
            if args is not None:
                yield args
        elif node.type == "class":
            name = node.child_by_field_name("name")
            if name is not None:
                yield name
        node = node.parent


def nodes_in(scope: list[Scoped], *types: str) -> Iterator[tuple[ParsedSource, Node]]:
    for parsed, root in scope:
        for node in walk(root):
            if not types or node.type in types:
                yield parsed, node


def is_skipped(case: TestCase) -> bool:
    if case.body is None:
        return False
    first = case.body.named_children[0] if case.body.named_children else None
    if first is None:
        return False
    name = method_name(case.parsed, first) if first.type == "call" else case.parsed.text(first)
    return name in SKIP_METHODS
