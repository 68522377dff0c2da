"""rails-chat checks for the `tests` dimension: are there tests, do they reach the LLM path with the
LLM replaced (fake, stub, WebMock, VCR), do they cover its failure, could they fail at all.

Invariants: every hit points at a test file line (or the test dir / app root for absences); the
per-project analysis is computed once per `AuditContext` and is a pure function of its sources;
API-fidelity hits come only from a verified `ApiReport` (a gem source was in hand).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.checks import AuditContext, Check, Hit
from shipbench.audit.models import Evidence
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type, parse_ruby
from shipbench.audit.ruby.verify_types import FakeMismatch
from shipbench.tasks.rails_chat.checks._common import (
    app_ruby,
    class_name,
    def_name,
    enclosing_class,
    is_controller,
    llm_entry_calls,
    method_name,
)
from shipbench.tasks.rails_chat.checks._core_path import on_core_path
from shipbench.tasks.rails_chat.checks._doubles import fails_llm, fake_vars, replaces_llm
from shipbench.tasks.rails_chat.checks._eager_config import key_raises
from shipbench.tasks.rails_chat.checks._llm_flow import project_flows, send_sites
from shipbench.tasks.rails_chat.checks._llmpath import (
    LlmPath,
    build_llm_path,
    class_resource,
    constant_chains,
    controller_resource,
    defined_names,
    request_reaches,
    request_resources,
    stops_at_blank_guard,
)
from shipbench.tasks.rails_chat.checks._missing_key_tests import simulates_missing_key
from shipbench.tasks.rails_chat.checks._rubber_stamp import doubles_in, locks_in_empty, test_only_branches
from shipbench.tasks.rails_chat.checks._silent_reply import silent_replies
from shipbench.tasks.rails_chat.checks._testsyntax import (
    Scoped,
    TestCase,
    TestSuite,
    build_suite,
    full_scope,
    nodes_in,
)
from shipbench.tasks.rails_chat.checks._theater import THEATER, Classified, classify
from shipbench.tasks.rails_chat.checks.persistence import classify as classify_persistence
from shipbench.tasks.rails_chat.checks.rubyllm import history_kept

REQUESTS = frozenset({"get", "post", "put", "patch", "delete", "head"})
WRITES = frozenset({"post", "put", "patch"})  # a chat turn is submitted, never fetched
CLICKS = frozenset({"click_on", "click_button", "click_link_or_button", "send_keys", "submit", "click"})
HELPER_FILES = ("test/test_helper.rb", "spec/spec_helper.rb", "spec/rails_helper.rb")


@dataclass(frozen=True)
class CaseFacts:
    case: TestCase
    verdict: Classified
    reaches: bool  # exercises app code on the LLM path
    direct: bool  # calls RubyLLM itself
    replaced: bool  # with the LLM replaced (fake, stub, WebMock, VCR)
    error_path: bool  # with a replacement that fails


@dataclass(frozen=True)
class Analysis:
    suite: TestSuite
    path: LlmPath
    cases: list[CaseFacts]
    network_blocked: bool


def analyse(ctx: AuditContext) -> Analysis:
    """The tests of `ctx`, analysed once per context (kept in the context, never in module state)."""
    cached = ctx.memo.get("tests_analysis")
    if isinstance(cached, Analysis):
        return cached
    suite = build_suite(ctx.test_sources())
    path = build_llm_path(ctx)
    facts = [_case_facts(suite, path, case) for case in suite.cases]
    result = Analysis(suite, path, facts, _network_blocked(suite))
    ctx.memo["tests_analysis"] = result
    ctx.derived["tests_count"] = len(facts)
    ctx.derived["tests_reaching_llm"] = sum(1 for f in facts if f.reaches)
    ctx.derived["tests_llm_replaced"] = sum(1 for f in facts if f.reaches and f.replaced)
    ctx.derived["tests_exercise_llm_path"] = any(f.reaches for f in facts)
    ctx.derived["tests_mock_llm"] = any(f.reaches and f.replaced for f in facts)
    return result


def _case_facts(suite: TestSuite, path: LlmPath, case: TestCase) -> CaseFacts:
    scope = full_scope(suite, case)
    fakes = fake_vars(suite, scope)
    replaced = replaces_llm(suite, path, scope, fakes)
    return CaseFacts(
        case=case,
        verdict=classify(suite, case),
        reaches=_reaches(path, case, full_scope(suite, case, global_setups=False)),
        direct=_calls_llm_directly(scope),
        replaced=replaced,
        error_path=replaced and fails_llm(suite, scope),
    )


def _calls_llm_directly(scope: list[Scoped]) -> bool:
    files = {p.rel: p for p, _ in scope}
    return any(_in_scope(scope, site.parsed, site.node) for p in files.values() for site in llm_entry_calls(p))


def _in_scope(scope: list[Scoped], parsed: ParsedSource, node: Node) -> bool:
    return any(
        p.rel == parsed.rel and r.start_byte <= node.start_byte and node.end_byte <= r.end_byte for p, r in scope
    )


# ---------------------------------------------------------------- reach


def _reaches(path: LlmPath, case: TestCase, scope: list[Scoped]) -> bool:
    if not path.exists:
        return False
    for parsed, root in scope:
        if any(path.names_class(parsed.text(n)) for n in constant_chains(root)):
            return True
    test_class = _test_class(case)
    requests = [(p, n) for p, n in nodes_in(scope, "call") if _receiverless(p, n, REQUESTS | {"visit"})]
    if any(request_reaches(path, p, n, test_class) for p, n in requests):
        return True
    clicks = any(method_name(p, n) in CLICKS for p, n in nodes_in(scope, "call"))
    return clicks and bool(path.controllers) and any(method_name(p, n) == "visit" for p, n in requests)


def _receiverless(parsed: ParsedSource, node: Node, names: frozenset[str]) -> bool:
    return node.child_by_field_name("receiver") is None and method_name(parsed, node) in names


def _test_class(case: TestCase) -> str:
    klass = enclosing_class(case.node)
    if klass is not None:
        return class_name(case.parsed, klass)
    node = case.node.parent
    while node is not None:
        if node.type == "call" and method_name(case.parsed, node) == "describe":
            args = node.child_by_field_name("arguments")
            first = args.named_children[0] if args is not None and args.named_children else None
            if first is not None and first.type in ("constant", "scope_resolution"):
                return case.parsed.text(first)
        node = node.parent
    return ""


# ---------------------------------------------------------------- network


def _network_blocked(suite: TestSuite) -> bool:
    blocked = allowed = False
    for f in suite.files:
        for call in of_type(f.parsed.root, "call"):
            name = method_name(f.parsed, call)
            recv = call.child_by_field_name("receiver")
            recv_text = f.parsed.text(recv) if recv is not None else ""
            if _blocks_network(f.parsed, call, recv_text, name):
                blocked = True
            elif recv_text == "WebMock" and name == "allow_net_connect!" and call.parent is not None:
                allowed = allowed or call.parent.type in ("body_statement", "program")
    return blocked and not (allowed and not _disables(suite))


def _blocks_network(parsed: ParsedSource, call: Node, recv_text: str, name: str) -> bool:
    if name == "require":
        return _required(parsed, call).startswith(("webmock", "vcr"))
    return (recv_text, name) in (("WebMock", "disable_net_connect!"), ("VCR", "configure"))


def _disables(suite: TestSuite) -> bool:
    return any(b"disable_net_connect!" in f.parsed.source for f in suite.files)


def _required(parsed: ParsedSource, call: Node) -> str:
    args = call.child_by_field_name("arguments")
    first = args.named_children[0] if args is not None and args.named_children else None
    return parsed.text(first).strip("\"'") if first is not None else ""


# ---------------------------------------------------------------- checks


def _test_dir(ctx: AuditContext, analysis: Analysis) -> str:
    rels = [c.case.parsed.rel for c in analysis.cases]
    spec = ctx.app_path("spec/")
    return ctx.app_path("spec") if sum(r.startswith(spec) for r in rels) * 2 > len(rels) else ctx.app_path("test")


def _at_case(ctx: AuditContext, facts: CaseFacts, line: int | None = None) -> Evidence:
    return ctx.at_line(facts.case.parsed.rel, line if line is not None else facts.case.line)


def check_none(ctx: AuditContext) -> Iterator[Hit]:
    if analyse(ctx).cases:
        return
    have = [p.rel for p in ctx.test_sources()]
    evidence = ctx.whole_file(have[0], "no test case in any test file") if have else ctx.absent("test/ or spec/")
    yield Hit("tests.none", 'No tests: no `test "..." do`, `def test_*` or `it "..." do` anywhere.', (evidence,))


def check_llm_path_untested(ctx: AuditContext) -> Iterator[Hit]:
    a = analyse(ctx)
    if not a.cases or not a.path.exists or any(f.reaches and f.replaced for f in a.cases):
        return
    reaching = sum(1 for f in a.cases if f.reaches)
    note = f"{len(a.cases)} tests, {reaching} reach {', '.join(a.path.files[:3])}, none with the LLM replaced"
    live = [f for f in a.cases if not f.replaced and f.verdict.verdict != "skipped" and _runs_llm_live(a, f)]
    if live:
        yield Hit(
            "tests.llm_path_live_only",
            f"{len(live)} test(s) exercise the LLM path only against the real provider: they need a key and "
            "the network, and without them (CI) the path is untested.",
            tuple(_at_case(ctx, f) for f in live),
        )
        return
    stopped = [
        ctx.at(p, n)
        for f in a.cases
        for p, n in _requests(a, f, REQUESTS)
        if stops_at_blank_guard(a.path, p, n, _test_class(f.case))
    ]
    message = "No test exercises the code that calls the LLM with the LLM replaced by a fake, stub or WebMock."
    if stopped:
        message += " The requests to it send only blank input and stop at the guard before the LLM."
    yield Hit("tests.llm_path_untested", message, (ctx.whole_file(_test_dir(ctx, a), note), *dict.fromkeys(stopped)))


def _runs_llm_live(a: Analysis, f: CaseFacts) -> bool:
    """Calls RubyLLM itself, or submits real input (POST/PUT/PATCH) to an action that reaches the LLM;
    a page GET that only builds a chat in a before_action sends nothing."""
    return f.direct or any(request_reaches(a.path, p, n, _test_class(f.case)) for p, n in _requests(a, f, WRITES))


def _requests(a: Analysis, f: CaseFacts, verbs: frozenset[str]) -> Iterator[tuple[ParsedSource, Node]]:
    """The integration requests (`post messages_path, ...`) the test itself runs, for these verbs."""
    for p, n in nodes_in(full_scope(a.suite, f.case, global_setups=False), "call"):
        if _receiverless(p, n, verbs):
            yield p, n


def _fake_message(fake: FakeMismatch) -> str:
    if fake.kind == "missing_constant":
        head = f"A test stubs or fakes `{fake.name}`, a constant the gem does not define."
    elif fake.kind == "stubbed_method":
        head = f"A test stubs `{fake.name}`, a method the real `{fake.real}` does not have."
    elif fake.kind == "fake_signature":
        head = f"Test double `{fake.name}` has a signature the real `{fake.real}` cannot match."
    else:
        head = f"Test double `{fake.name}` defines a method the real `{fake.real}` lacks."
    return f"{head} {fake.detail}".strip()


def check_fake_wrong_api(ctx: AuditContext) -> Iterator[Hit]:
    if not ctx.api.verified:
        return
    for fake in ctx.api.fakes:
        if fake.kind != "defined_constant":
            yield Hit("tests.fake_wrong_api", _fake_message(fake), (ctx.at_line(fake.path, fake.line),), key=fake.name)
    for call in ctx.api.calls:
        if call.in_test and call.verdict == "missing":
            message = f"A test calls `{call.call}`, which does not exist in the gem. {call.detail}"
            yield Hit("tests.fake_wrong_api", message.strip(), (ctx.at_line(call.path, call.line),), key=call.call)


def check_defines_gem_constant(ctx: AuditContext) -> Iterator[Hit]:
    if not ctx.api.verified:
        return
    for fake in ctx.api.fakes:
        if fake.kind == "defined_constant":
            message = (
                f"The test suite defines `{fake.name}` inside the gem's namespace; the locked gem has no "
                "such constant, so a stub makes an invented API look real."
            )
            yield Hit("tests.defines_gem_constant", message, (ctx.at_line(fake.path, fake.line),), key=fake.name)


def _leaf(call_name: str) -> str:
    return call_name.replace("#", ".").rsplit(".", 1)[-1]


def _defective_methods(ctx: AuditContext) -> tuple[set[str], set[str]]:
    """(methods called with arguments the gem rejects, methods the app calls only off the core path)."""
    if not ctx.api.verified:
        return set(), set()
    app = [c for c in ctx.api.calls if not c.in_test]
    rejected = {_leaf(c.call) for c in app if c.verdict == "bad_arguments"}
    kept = history_kept(ctx)
    on_path = {_leaf(c.call) for c in app if on_core_path(ctx, c, kept)}
    dead = {_leaf(c.call) for c in app if c.verdict != "missing"} - on_path
    return rejected, dead


def rubber_stamps(ctx: AuditContext) -> list[Evidence]:
    a = analyse(ctx)
    rejected, dead = _defective_methods(ctx)
    silent = {def_name(p, m) for p, m, _ in silent_replies(ctx)}
    found: list[Evidence] = []
    for facts in a.cases:
        if not (facts.reaches and facts.replaced) or facts.verdict.verdict == "skipped":
            continue
        scope = full_scope(a.suite, facts.case)
        for double in doubles_in(a.suite, scope):
            if (double.method in rejected and double.accepts_any) or double.method in dead:
                found.append(ctx.at(double.parsed, double.node))
        if silent:
            found.extend(ctx.at(p, n) for p, n in locks_in_empty(scope, silent))
    if any(f.reaches and f.replaced for f in a.cases):
        sends = [(site.parsed.rel, site.node.start_byte) for site in send_sites(ctx)]
        found.extend(ctx.at(p, n) for p, n in test_only_branches(app_ruby(ctx), sends))
    return list(dict.fromkeys(found))


def check_rubber_stamp(ctx: AuditContext) -> Iterator[Hit]:
    evidence = rubber_stamps(ctx)
    if evidence:
        yield Hit(
            "tests.rubber_stamp",
            "Tests replace the LLM and pass against a defect the audit found: a double accepting arguments "
            "the gem rejects, a mock of a call that never runs, or an assertion locking in a silent empty reply.",
            tuple(evidence),
        )


def _components(ctx: AuditContext) -> dict[str, tuple[str, set[str]]]:
    """Main components by file: (kind, names that reach it): the controllers handling a turn (kind
    "controller", their resource), the classes that call the LLM and the conversation store's class."""
    a = analyse(ctx)
    found: dict[str, tuple[str, set[str]]] = {}
    for flow in project_flows(ctx):
        rel = flow.parsed.rel
        if (flow.entries or flow.sends) and not rel.startswith(("config/", f"{ctx.app_prefix}config/")):
            if is_controller(flow.parsed):
                if controller_resource(rel) != "application":
                    found[rel] = ("controller", {controller_resource(rel)})
            else:
                found[rel] = ("class", defined_names(flow.parsed) - {""})
    for rel in a.path.files:
        parsed = ctx.parsed(rel)
        resource = controller_resource(rel)
        routed = resource != "application"  # the base controller holds no routed action of its own
        if parsed is not None and is_controller(parsed) and routed and a.path.llm_actions.get(resource):
            found.setdefault(rel, ("controller", {resource}))
    _, store = classify_persistence(ctx)
    if store is not None and store.rel not in found and not is_controller(store.parsed):
        names = defined_names(store.parsed) - {""}
        if names:
            found[store.rel] = ("class", names)
    return {rel: v for rel, v in found.items() if v[1]}


def _reach_index(ctx: AuditContext) -> list[tuple[set[str], set[str]]]:
    """Per test case: (constants its scope names, controller resources its requests or class target)."""
    cached = ctx.memo.get("tests_reach_index")
    if isinstance(cached, list):
        return cached
    a = analyse(ctx)
    index: list[tuple[set[str], set[str]]] = []
    for facts in a.cases:
        scope = full_scope(a.suite, facts.case)
        constants = {p.text(n).lstrip(":") for p, r in scope for n in constant_chains(r)}
        resources = {class_resource(_test_class(facts.case))}
        for p, n in nodes_in(scope, "call"):
            if _receiverless(p, n, REQUESTS | {"visit"}):
                resources |= request_resources(a.path, p, n)
        index.append((constants, resources))
    ctx.memo["tests_reach_index"] = index
    return index


def _tested(ctx: AuditContext, kind: str, names: set[str]) -> bool:
    wanted = 0 if kind == "class" else 1
    return any(entry[wanted] & names for entry in _reach_index(ctx))


def check_component_untested(ctx: AuditContext) -> Iterator[Hit]:
    if not analyse(ctx).cases:
        return  # tests.none says it
    untested = [rel for rel, (kind, names) in sorted(_components(ctx).items()) if not _tested(ctx, kind, names)]
    if untested:
        yield Hit(
            "tests.component_untested",
            f"Requirement 10 asks for tests of each component; no test reaches {', '.join(untested)}.",
            tuple(ctx.whole_file(rel, "no test reaches this component") for rel in untested),
        )


def check_real_network(ctx: AuditContext) -> Iterator[Hit]:
    a = analyse(ctx)
    if a.network_blocked:
        return
    exposed = [f for f in a.cases if (f.reaches or f.direct) and not f.replaced]
    if exposed:
        yield Hit(
            "tests.real_network",
            f"{len(exposed)} test(s) reach the LLM with nothing blocking real HTTP (no WebMock/VCR/fake).",
            tuple(_at_case(ctx, f) for f in exposed),
        )


def check_no_error_path(ctx: AuditContext) -> Iterator[Hit]:
    a = analyse(ctx)
    if not a.cases or not a.path.exists or any(f.reaches and f.error_path for f in a.cases):
        return
    yield Hit(
        "tests.no_error_path",
        "No test makes the LLM fail (a fake that raises, a stub returning an error status).",
        (ctx.whole_file(_test_dir(ctx, a), "no test exercises an LLM failure"),),
    )


def check_no_missing_key_test(ctx: AuditContext) -> Iterator[Hit]:
    """The LLM failure path is tested, but never the other error the template names: a missing key."""
    a = analyse(ctx)
    if not any(f.reaches and f.error_path for f in a.cases):
        return  # no error path at all is tests.no_error_path's
    raised = {k for p in app_ruby(ctx) for _, k in key_raises(p)}
    if simulates_missing_key(ctx.test_sources(), raised):
        return
    yield Hit(
        "tests.no_missing_key_test",
        "No test runs the app with the API key missing (ENV cleared, configuration blanked, or the "
        "missing-key error raised): what a user sees without a key is untested.",
        (ctx.whole_file(_test_dir(ctx, a), "no test removes the API key"),),
    )


def check_coverage_theater(ctx: AuditContext) -> Iterator[Hit]:
    a = analyse(ctx)
    counted = [f for f in a.cases if f.verdict.verdict != "skipped"]
    theater = [f for f in counted if f.verdict.verdict in THEATER]
    swallowed = sum(1 for f in theater if f.verdict.verdict == "rescue_swallow")
    if not theater or not (swallowed or len(theater) * 2 >= len(counted)):
        return
    kinds = {k: sum(1 for f in theater if f.verdict.verdict == k) for k in sorted(THEATER)}
    summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.items() if n)
    yield Hit(
        "tests.coverage_theater",
        f"{len(theater)} of {len(counted)} tests cannot fail ({summary}).",
        tuple(_at_case(ctx, f, f.verdict.where) for f in theater),
    )


def check_no_coverage_tool(ctx: AuditContext) -> Iterator[Hit]:
    if not analyse(ctx).cases or _simplecov_started(ctx):
        return
    helper = next((ctx.app_path(h) for h in HELPER_FILES if ctx.app_file(h) is not None), None)
    evidence = ctx.whole_file(helper, "SimpleCov.start not found") if helper else ctx.absent("test/test_helper.rb")
    yield Hit("tests.no_coverage_tool", "SimpleCov is never started in the test helper.", (evidence,))


def _simplecov_started(ctx: AuditContext) -> bool:
    sources = [p for h in HELPER_FILES if (f := ctx.app_file(h)) is not None and (p := ctx.parsed(f.rel))]
    dotfile = ctx.app_file(".simplecov")
    if dotfile is not None:
        sources.append(parse_ruby(dotfile.rel, dotfile.read_bytes()))
    starts = any(_simplecov_call(p, "start") for p in sources)
    required = any(_required(p, c) == "simplecov" for p in sources for c in of_type(p.root, "call"))
    return starts or (required and dotfile is not None)


def _simplecov_call(parsed: ParsedSource, name: str) -> bool:
    for call in of_type(parsed.root, "call"):
        recv = call.child_by_field_name("receiver")
        if recv is not None and parsed.text(recv).lstrip(":") == "SimpleCov" and method_name(parsed, call) == name:
            return True
    return False


CHECKS: list[Check] = [
    check_none,
    check_llm_path_untested,
    check_fake_wrong_api,
    check_defines_gem_constant,
    check_rubber_stamp,
    check_component_untested,
    check_real_network,
    check_no_error_path,
    check_no_missing_key_test,
    check_coverage_theater,
    check_no_coverage_tool,
]

__all__ = ["CHECKS", "Analysis", "CaseFacts", "analyse"]
