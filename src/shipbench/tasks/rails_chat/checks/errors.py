"""rails-chat checks for the `errors` dimension: is an LLM failure rescued, typed, reported to the
user, and is a missing API key caught up front.

Invariants: "LLM sends" are ask/say/complete on a chat (see _llm_flow) plus raw HTTP calls to an LLM
(see rubyllm.raw_http_places), in app code only; every rule except no_key_preflight is silent when
the app sends nothing; no_user_feedback and swallowed judge only rescues that cover a send.

What counts as a key preflight: `ENV.fetch("…KEY…")` without a default (KeyError at boot), a
`fetch` whose block raises, `.presence ||`/`or raise`, any if/unless/ternary whose condition reads
the key (ENV[...KEY...], *api_key*), or a `configured?`/`ensure_api_key!`-style method reading it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.checks import AuditContext, Check, Hit
from shipbench.audit.models import Evidence
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import app_ruby, def_name, in_logging, method_name
from shipbench.tasks.rails_chat.checks._eager_config import eager_config_errors
from shipbench.tasks.rails_chat.checks._escapes import project_escapes
from shipbench.tasks.rails_chat.checks._exception_text import shown_exception_texts
from shipbench.tasks.rails_chat.checks._llm_flow import send_sites
from shipbench.tasks.rails_chat.checks._rescue import Coverage, Rescue, rescue_index
from shipbench.tasks.rails_chat.checks._silent_reply import silent_empty_replies
from shipbench.tasks.rails_chat.checks.rubyllm import raw_http_places

FEEDBACK_CALLS = frozenset(
    {"flash", "render", "redirect_to", "respond_to", "turbo_stream", "head", "message", "t", "translate"}
)
FEEDBACK_NAME = re.compile(r"error|alert|notice|fail|warning", re.IGNORECASE)
FALSY_TYPES = frozenset({"nil", "false"})
KEY_TEXT = re.compile(r"api_key|API_KEY|OPENROUTER", re.IGNORECASE)
PREFLIGHT_METHOD = re.compile(r"(configured|api_key|key_present|credentials)\w*[?!]$|^(ensure|check|require)_\w*key")


@dataclass(frozen=True)
class Send:
    parsed: ParsedSource
    node: Node


def llm_sends(ctx: AuditContext) -> list[Send]:
    sends = [Send(s.parsed, s.node) for s in send_sites(ctx)]
    for parsed, node, what in raw_http_places(ctx):
        parent = node.parent
        if parsed.kind == "ruby" and parent is not None and parent.type == "call" and what != "LLM endpoint URL":
            sends.append(Send(parsed, parent))  # Net::HTTP.post(...), Faraday.new(...), OpenAI::Client.new
    return sends


def _coverages(ctx: AuditContext) -> list[tuple[Send, Coverage]]:
    index = rescue_index(ctx)
    return [(s, index.coverage(s.parsed, s.node)) for s in llm_sends(ctx)]


def _rescue_evidence(ctx: AuditContext, rescues: list[Rescue]) -> tuple[Evidence, ...]:
    return tuple(dict.fromkeys(ctx.at(r.parsed, r.node) for r in rescues))


def _covering(ctx: AuditContext) -> list[Rescue]:
    seen: dict[tuple[str, int], Rescue] = {}
    for _, cov in _coverages(ctx):
        for r in cov.rescues:
            seen.setdefault((r.parsed.rel, r.node.start_byte), r)
    return list(seen.values())


# ---------------------------------------------------------------- no_rescue / untyped


def check_no_rescue(ctx: AuditContext) -> Iterator[Hit]:
    uncovered = [s for s, cov in _coverages(ctx) if not cov.rescues]
    if uncovered:
        yield Hit(
            rule="errors.no_rescue",
            message=f"{len(uncovered)} LLM call(s) with no rescue around them, in their method, in a visible "
            "caller or via rescue_from: a provider error becomes a 500 page.",
            evidence=tuple(dict.fromkeys(ctx.at(s.parsed, s.node) for s in uncovered)),
        )


def check_untyped_rescue(ctx: AuditContext) -> Iterator[Hit]:
    rescues = _covering(ctx)
    index = rescue_index(ctx)
    if rescues and all(all(index.kind_of(c) == "untyped" for c in r.classes) for r in rescues):
        yield Hit(
            rule="errors.untyped_rescue",
            message="LLM failures are only caught with a bare rescue / StandardError / Exception; "
            "no RubyLLM::Error or app error class.",
            evidence=_rescue_evidence(ctx, rescues),
        )


# ---------------------------------------------------------------- swallowed / feedback


def _statements(body: Node | None) -> list[Node]:
    if body is None:
        return []
    if body.type in ("then", "body_statement", "begin", "parenthesized_statements"):
        return [c for c in body.named_children if c.type != "comment"]
    return [body]


def _is_empty_value(parsed: ParsedSource, node: Node) -> bool:
    if node.type in FALSY_TYPES:
        return True
    if node.type == "string":
        return not parsed.text(node).strip("\"'")
    if node.type in ("array", "hash"):
        return not node.named_children
    if node.type == "assignment":  # `@reply = nil`: the failure is turned into nothing
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        quiet = left is not None and not FEEDBACK_NAME.search(parsed.text(left))
        return quiet and right is not None and _is_empty_value(parsed, right)
    if node.type in ("return", "next", "break"):
        args = [c for c in node.named_children]
        return not args or all(_is_empty_value(parsed, a) for a in _statements(args[0]) or args[0].named_children)
    return False


def is_swallowed(rescue: Rescue) -> bool:
    """Empty body, or only nil/false/""/[]/{} returned, with no logging and no message (a rescue that
    logs and returns nothing is errors.no_user_feedback's: the operator knows, the user does not)."""
    return all(_is_empty_value(rescue.parsed, s) for s in _statements(rescue.body))


def _has_feedback(parsed: ParsedSource, node: Node | None) -> bool:
    """Something a user can see: flash, render, an error text, a typed raise for the caller to show."""
    if node is None:
        return False
    kinds = ("call", "identifier", "instance_variable", "simple_symbol", "string", "hash_key_symbol")
    for sub in of_type(node, *kinds):
        if in_logging(parsed, sub, node):
            continue
        text = parsed.text(sub)
        if sub.type == "call":
            name = method_name(parsed, sub)
            if name in FEEDBACK_CALLS or name.startswith("broadcast") or FEEDBACK_NAME.search(name):
                return True
            if name in ("raise", "fail") and _raises_class(parsed, sub):
                return True
        elif sub.type == "string":
            if sub.parent is not None and sub.parent.type != "string" and text.strip("\"'").strip():
                return True
        elif FEEDBACK_NAME.search(text) or text in ("flash",):
            return True
    return False


def _raises_class(parsed: ParsedSource, raise_call: Node) -> bool:
    args = raise_call.child_by_field_name("arguments")
    first = args.named_children[0] if args is not None and args.named_children else None
    return first is not None and (first.type in ("constant", "scope_resolution") or first.type == "call")


def check_swallowed(ctx: AuditContext) -> Iterator[Hit]:
    swallowed = [r for r in _covering(ctx) if is_swallowed(r)]
    if swallowed:
        yield Hit(
            rule="errors.swallowed",
            message="An LLM failure is rescued and dropped: the rescue only returns nil/empty, no log, no message.",
            evidence=tuple(
                dict.fromkeys(
                    [
                        *_rescue_evidence(ctx, swallowed),
                        *(ctx.at(r.parsed, v) for r in swallowed for v in _statements(r.body)),
                    ]
                )
            ),
        )


def check_no_user_feedback(ctx: AuditContext) -> Iterator[Hit]:
    covered = [(s, cov) for s, cov in _coverages(ctx) if cov.rescues]
    if not covered:
        return
    for _, cov in covered:
        if any(_has_feedback(r.parsed, r.body) for r in cov.rescues):
            return
        if any(_has_feedback(p, m.child_by_field_name("body")) for p, m in cov.callers):
            return
    rescues = [r for _, cov in covered for r in cov.rescues]
    yield Hit(
        rule="errors.no_user_feedback",
        message="LLM failures are rescued but nothing is shown to the user (no flash, error text or error render).",
        evidence=_rescue_evidence(ctx, rescues),
    )


# ---------------------------------------------------------------- key preflight


def _strict_fetch(parsed: ParsedSource, call: Node) -> bool:
    """`ENV.fetch("…KEY…")` with no default, or with a block that raises."""
    recv = call.child_by_field_name("receiver")
    if method_name(parsed, call) != "fetch" or recv is None or parsed.text(recv).lstrip(":") != "ENV":
        return False
    args = call.child_by_field_name("arguments")
    named = list(args.named_children) if args is not None else []
    if not named or not KEY_TEXT.search(parsed.text(named[0])):
        return False
    block = call.child_by_field_name("block")
    if block is not None:
        return any(method_name(parsed, c) in ("raise", "fail", "abort") for c in of_type(block, "call"))
    return len(named) == 1


def _conditional_on_key(parsed: ParsedSource, node: Node) -> bool:
    cond = node.child_by_field_name("condition")
    return cond is not None and bool(KEY_TEXT.search(parsed.text(cond)))


def _raise_fallback(parsed: ParsedSource, node: Node) -> bool:
    """`ENV["…KEY…"].presence || raise ...` / `key or raise ...`."""
    left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
    if left is None or right is None or not KEY_TEXT.search(parsed.text(left)):
        return False
    return parsed.text(right).startswith(("raise", "fail", "abort")) or ".presence" in parsed.text(left)


def preflight_places(parsed: ParsedSource) -> Iterator[Node]:
    for node in of_type(parsed.root, "call"):
        if _strict_fetch(parsed, node):
            yield node
    for node in of_type(parsed.root, "if", "unless", "if_modifier", "unless_modifier", "conditional", "elsif"):
        if _conditional_on_key(parsed, node):
            yield node
    for node in of_type(parsed.root, "binary"):
        if _raise_fallback(parsed, node):
            yield node
    for node in of_type(parsed.root, "method", "singleton_method"):
        body = node.child_by_field_name("body")
        if PREFLIGHT_METHOD.search(def_name(parsed, node)) and body and KEY_TEXT.search(parsed.text(body)):
            yield node


def check_no_key_preflight(ctx: AuditContext) -> Iterator[Hit]:
    if any(True for p in app_ruby(ctx) for _ in preflight_places(p)):
        return
    yield Hit(
        rule="errors.no_key_preflight",
        message="A missing OPENROUTER_API_KEY is not detected up front (no ENV.fetch without default, "
        "no presence check that raises or shows a message).",
        evidence=(ctx.absent('ENV.fetch("OPENROUTER_API_KEY") or a presence check on the key'),),
    )


def check_escaping_failures(ctx: AuditContext) -> Iterator[Hit]:
    key_checked = any(True for p in app_ruby(ctx) for _ in preflight_places(p))
    for escape in project_escapes(ctx, key_checked):
        yield Hit(
            rule="errors.failure_escapes_rescue",
            message=f"The rescue around the LLM call does not catch {escape.failure}: it becomes a 500 page.",
            evidence=(ctx.at(escape.parsed, escape.node),),
            key=escape.failure.split(" (")[0],
        )


def check_silent_empty_reply(ctx: AuditContext) -> Iterator[Hit]:
    evidence = tuple(dict.fromkeys(silent_empty_replies(ctx)))
    if evidence:
        yield Hit(
            rule="errors.silent_empty_reply",
            message="The LLM is asked only on some branch; on another the turn is answered with an empty "
            "value, silently: the user gets no reply and no error.",
            evidence=evidence,
        )


def check_exception_message_shown(ctx: AuditContext) -> Iterator[Hit]:
    evidence = tuple(dict.fromkeys(ctx.at(p, n) for p, n in shown_exception_texts(ctx, _covering(ctx))))
    if evidence:
        yield Hit(
            rule="errors.exception_message_shown",
            message="The raw text of a rescued LLM failure is shown to the user (provider internals, "
            "no actionable message).",
            evidence=evidence,
        )


def check_eager_config_error(ctx: AuditContext) -> Iterator[Hit]:
    evidence = tuple(dict.fromkeys(ctx.at(p, n) for p, n in eager_config_errors(ctx)))
    if evidence:
        yield Hit(
            rule="errors.eager_config_error",
            message="A missing API key raises outside the app's error handling: at boot (no boot or image "
            "build without the key) or on the request path outside the rescue around the LLM call.",
            evidence=evidence,
        )


CHECKS: list[Check] = [
    check_no_rescue,
    check_silent_empty_reply,
    check_untyped_rescue,
    check_swallowed,
    check_no_user_feedback,
    check_no_key_preflight,
    check_escaping_failures,
    check_exception_message_shown,
    check_eager_config_error,
]
