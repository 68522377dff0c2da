"""rails-chat checks for the `persistence` dimension: where the conversation lives between requests.

Invariants: `classify` is a pure function of the context (parses are cached, so calling it from
several checks is cheap and always gives the same answer); `check_persistence_kind` runs first and
records `derived["persistence"]` (a contract value) and `derived["persistence_evidence"]`
("path:line"). Only app code (app/, lib/, config/, views, app JS) is read, never tests.
A Rails.cache store without `expires_in` is acceptable for this rubric: it is not a finding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from shipbench.audit.checks import AuditContext, Check, Hit
from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, of_type
from shipbench.tasks.rails_chat.checks._common import app_ruby, calls, is_controller, llm_entry_calls, llm_sources
from shipbench.tasks.rails_chat.checks._persistence_signals import (
    HISTORY_RE,
    SERVER_KINDS,
    StoreSignal,
    collect_signals,
    file_graph,
    neighbourhood,
    session_key,
)

PRECEDENCE = ("session_cookie", "rails_cache", "database", "singleton", "class_variable", "client_side")
"""Tie-break between equally ranked stores: shared, multi-worker-safe stores first."""
LINK_DISTANCE = 2
"""A store is 'linked' to the LLM code when its file is this many reference hops from an LLM file."""

_CAP_METHODS = ("last", "first", "take", "drop", "shift", "slice", "slice!")
_CAP_NEEDS_ARG = frozenset({"last", "first", "take", "drop", "slice"})
_SIZE_RE = re.compile(r"\.(?:size|length|count)\b")
_SERVER_SESSION_STORES = frozenset(
    {"cache_store", "redis_store", "redis_session_store", "active_record_store", "mem_cache_store"}
)
_RULE_FOR_KIND = {
    "none": ("persistence.none", "No conversation state survives between requests."),
    "client_side": ("persistence.client_side", "Conversation history lives only in the browser."),
    "class_variable": (
        "persistence.class_variable",
        "Conversation history is kept in a class variable / class-level store (process-local).",
    ),
    "singleton": (
        "persistence.singleton",
        "Conversation history is kept in a process-local singleton or global.",
    ),
}


# ---------------------------------------------------------------- classification


def _rank(signal: StoreSignal, linked: set[str]) -> tuple[bool, bool, bool, bool, int]:
    is_linked = signal.rel in linked and signal.kind in SERVER_KINDS
    return (
        signal.conversational or is_linked,
        signal.kind in SERVER_KINDS,
        signal.conversational,
        is_linked,
        -PRECEDENCE.index(signal.kind),
    )


def _linked_files(ctx: AuditContext) -> set[str]:
    sources = app_ruby(ctx)
    graph = file_graph(sources)
    return neighbourhood(graph, {p.rel for p in llm_sources(ctx)}, LINK_DISTANCE)


def classify(ctx: AuditContext) -> tuple[str, StoreSignal | None]:
    """Memoised per context: see `_classify`."""
    cached = ctx.memo.get("persistence_classify")
    if isinstance(cached, tuple):
        return cached
    found = _classify(ctx)
    ctx.memo["persistence_classify"] = found
    return found


def _classify(ctx: AuditContext) -> tuple[str, StoreSignal | None]:
    """The conversation-state strategy and the store that carries it (None for 'none').

    The store chosen is the best-ranked signal: one that names conversation data or is linked to the
    LLM code, server-side before client-side, then conversational, then linked, then `PRECEDENCE`.
    Signals that neither name conversation data nor touch the LLM code are not conversation stores.
    """
    linked = _linked_files(ctx)
    best: StoreSignal | None = None
    best_rank: tuple[bool, bool, bool, bool, int] | None = None
    for signal in collect_signals(ctx):
        rank = _rank(signal, linked)
        if not rank[0]:
            continue
        if best_rank is None or rank > best_rank:
            best, best_rank = signal, rank
    return (best.kind, best) if best is not None else ("none", None)


def _none_location(ctx: AuditContext) -> tuple[str, int]:
    for parsed in llm_sources(ctx):
        entries = llm_entry_calls(parsed)
        if entries:
            return parsed.rel, entries[0].line
    return ctx.facts.app_root or ".", 0


def check_persistence_kind(ctx: AuditContext) -> Iterable[Hit]:
    kind, signal = classify(ctx)
    if signal is not None:
        rel, line = signal.rel, signal.line
    else:
        rel, line = _none_location(ctx)
    ctx.derived["persistence"] = kind
    ctx.derived["persistence_evidence"] = f"{rel}:{line}"
    if kind not in _RULE_FOR_KIND:
        return
    rule, message = _RULE_FOR_KIND[kind]
    if signal is not None or line:
        evidence = ctx.at_line(rel, line)
        if signal is None:
            message += " Each request builds a fresh chat here and nothing carries earlier turns."
    else:
        evidence = ctx.absent("a session, cache or other store of the conversation")
    yield Hit(rule=rule, message=message, evidence=(evidence,))


# ---------------------------------------------------------------- unbounded history


def _session_is_server_side(ctx: AuditContext) -> bool:
    for parsed in ctx.ruby_sources("config"):
        for site in calls(parsed, "session_store"):
            args = site.node.child_by_field_name("arguments")
            first = args.named_children[0] if args is not None and args.named_children else None
            if first is not None and parsed.text(first).lstrip(":") in _SERVER_SESSION_STORES:
                return True
    return False


def _historyish(text: str, keys: set[str]) -> bool:
    return bool(HISTORY_RE.search(text)) or any(k and k in text for k in keys)


def _capped_call(parsed: ParsedSource, keys: set[str]) -> bool:
    for site in calls(parsed, *_CAP_METHODS):
        args = site.node.child_by_field_name("arguments")
        if site.method in _CAP_NEEDS_ARG and args is None:
            continue
        target = _assigned_to(parsed, site.node)
        if target.startswith("@") and not target.startswith("@@") and is_controller(parsed):
            continue  # `@messages = history.last(2)` in an action trims what the view shows, not what is stored
        named = [site.receiver, target, parsed.text(args) if args else ""]
        if any(_historyish(text, keys) for text in named):
            return True
    return False


def _assigned_to(parsed: ParsedSource, node: Node) -> str:
    """The left-hand side of the nearest assignment whose value contains `node` ('' if none)."""
    parent = node.parent
    while parent is not None and parent.type not in ("assignment", "operator_assignment", "method"):
        parent = parent.parent
    left = parent.child_by_field_name("left") if parent is not None and parent.type != "method" else None
    return parsed.text(left) if left is not None else ""


def _capped_slice(parsed: ParsedSource, keys: set[str]) -> bool:
    for ref in of_type(parsed.root, "element_reference"):
        obj = ref.child_by_field_name("object")
        ranges = [c for c in ref.named_children[1:] if c.type == "range"]
        if obj is None or not ranges or not _historyish(parsed.text(obj), keys):
            continue
        begin = ranges[0].child_by_field_name("begin")
        if begin is not None and parsed.text(begin).lstrip().startswith("-"):
            return True
    return False


def _capped_guard(parsed: ParsedSource, keys: set[str]) -> bool:
    for node in of_type(parsed.root, "binary"):
        op = node.child_by_field_name("operator")
        if op is None or parsed.text(op) not in (">", ">=", "<", "<="):
            continue
        text = parsed.text(node)
        if _SIZE_RE.search(text) and _historyish(text, keys):
            return True
    return False


def has_history_cap(sources: Iterable[ParsedSource], keys: set[str]) -> bool:
    """Whether any of `sources` trims a history-like collection (`.last(N)`, `[-N..]`, a size guard...)."""
    return any(_capped_call(p, keys) or _capped_slice(p, keys) or _capped_guard(p, keys) for p in sources)


def _session_writes(ctx: AuditContext) -> list[StoreSignal]:
    """Session/cookie writes of the conversation: those naming conversation data, else those linked to the LLM code."""
    signals = [s for s in collect_signals(ctx) if s.kind == "session_cookie"]
    named = [s for s in signals if s.conversational]
    if named:
        return named
    linked = _linked_files(ctx)
    return [s for s in signals if s.rel in linked]


def cookie_writes(ctx: AuditContext) -> tuple[list[StoreSignal], list[ParsedSource]]:
    """The cookie writes of the conversation and the files around them ([] when it lives server-side)."""
    cached = ctx.memo.get("cookie_writes")
    if isinstance(cached, tuple):
        return cached
    found = _cookie_writes(ctx)
    ctx.memo["cookie_writes"] = found
    return found


def _cookie_writes(ctx: AuditContext) -> tuple[list[StoreSignal], list[ParsedSource]]:
    kind = ctx.derived.get("persistence")
    if kind is None:
        kind = classify(ctx)[0]
    if kind != "session_cookie":
        return [], []
    writes = _session_writes(ctx)
    if _session_is_server_side(ctx):
        writes = [w for w in writes if w.container == "cookies"]
    if not writes:
        return [], []
    sources = app_ruby(ctx)
    scope_rels = neighbourhood(file_graph(sources), {w.rel for w in writes}, 1)
    return list(_iter_unique(writes)), [p for p in sources if p.rel in scope_rels]


def unbounded_cookie_writes(ctx: AuditContext) -> list[StoreSignal]:
    """Cookie writes of the conversation that no count cap trims."""
    writes, scope = cookie_writes(ctx)
    keys = {session_key(w.name) for w in writes}
    return [] if not writes or has_history_cap(scope, keys) else writes


def _bounds_bytes(parsed: ParsedSource, write_lines: set[int]) -> bool:
    """Something limits what is written by size, not by count: `bytesize`/`truncate_bytes` anywhere near
    the store, a `to_json` size check, or `truncate`/`byteslice` in the method that writes the store."""
    if any(True for _ in calls(parsed, "bytesize", "truncate_bytes")):
        return True
    for site in calls(parsed, "truncate", "byteslice"):
        method = enclosing(site.node, "method", "singleton_method")
        if method is not None and any(method.start_point[0] < line <= method.end_point[0] + 1 for line in write_lines):
            return True
    return any(_SIZE_RE.search(parsed.text(n)) and "to_json" in parsed.text(n) for n in of_type(parsed.root, "binary"))


def count_capped_cookie_writes(ctx: AuditContext) -> list[StoreSignal]:
    """Cookie writes of the conversation trimmed by a message count only: a count does not keep LLM replies
    under the 4 KB cookie limit, nothing bounds their size in bytes."""
    writes, scope = cookie_writes(ctx)
    lines = {p.rel: {w.line for w in writes if w.rel == p.rel} for p in scope}
    if not writes or unbounded_cookie_writes(ctx) or any(_bounds_bytes(p, lines[p.rel]) for p in scope):
        return []
    return writes


def check_unbounded_history(ctx: AuditContext) -> Iterable[Hit]:
    writes = unbounded_cookie_writes(ctx)
    if not writes:
        return
    yield Hit(
        rule="persistence.unbounded_history",
        message="Conversation history is stored in the session cookie and never trimmed: "
        "it overflows the 4 KB cookie after a few turns.",
        evidence=tuple(ctx.at_line(w.rel, w.line) for w in writes),
    )


def _iter_unique(signals: list[StoreSignal]) -> Iterator[StoreSignal]:
    seen: set[tuple[str, int]] = set()
    for s in signals:
        if (s.rel, s.line) not in seen:
            seen.add((s.rel, s.line))
            yield s


def check_cookie_size_risk(ctx: AuditContext) -> Iterable[Hit]:
    writes = count_capped_cookie_writes(ctx)
    if writes:
        yield Hit(
            rule="persistence.cookie_size_risk",
            message="The history in the cookie is capped by message count only; nothing bounds its size, so "
            "a few long replies still reach the 4 KB cookie limit.",
            evidence=tuple(ctx.at_line(w.rel, w.line) for w in writes),
        )


CHECKS: list[Check] = [check_persistence_kind, check_unbounded_history, check_cookie_size_risk]
