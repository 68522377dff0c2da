"""rails-chat checks for the `rubyllm` dimension: is the ruby_llm gem used, used correctly, and for
multi-turn chat with a system prompt, a current Sonnet and OpenRouter.

Invariants: only app code (app/, lib/, config/) is judged, never tests; API verdicts come from
`ctx.api` and are ignored unless the gem source was available (`ctx.api.verified`); rules about how
a chat is used (send, reply accessor, multi-turn) only fire when a chat entry point exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from shipbench.audit.checks import AuditContext, Check, Hit
from shipbench.audit.models import ApiCall, Evidence
from shipbench.audit.ruby.parse import Node, ParsedSource, enclosing, of_type
from shipbench.tasks.rails_chat.checks._common import (
    CallSite,
    app_ruby,
    class_name,
    def_name,
    enclosing_class,
    is_controller,
    keyword_arguments,
    method_name,
)
from shipbench.tasks.rails_chat.checks._core_path import CORE_PATH, on_core_path
from shipbench.tasks.rails_chat.checks._llm_flow import CHAT, FileFlow, entry_sites, project_flows, send_sites
from shipbench.tasks.rails_chat.checks._model_slugs import is_accepted, project_slugs
from shipbench.tasks.rails_chat.checks._persistence_signals import store_aliases
from shipbench.tasks.rails_chat.checks._reply_shape import payload_reads

SDK_CLIENTS = ("OpenAI::Client", "Openrouter::Client", "OpenRouter::Client", "Anthropic::Client")
HTTP_CLIENTS = ("Net::HTTP", "Faraday", "HTTParty", "RestClient", "Excon", "HTTPX", "Typhoeus", "HTTP")
LLM_URL = re.compile(r"openrouter\.ai/api|api\.openai\.com|api\.anthropic\.com|/chat/completions|/v1/messages")
LLM_HINT = re.compile(r"openrouter|openai|anthropic|chat/completions|/v1/messages", re.IGNORECASE)
STRING_TYPES = ("string", "template_string")
HASH_ACCESS = frozenset({"dig", "fetch", "[]", "to_h"})
HISTORY_DISCARDED = "history_discarded"
KEEPING_BLOCK_CALLS = frozenset({"fetch", "fetch_or_store", "compute_if_absent", "cache", "write"})


def _evidence(ctx: AuditContext, sites: Iterable[CallSite]) -> tuple[Evidence, ...]:
    return tuple(dict.fromkeys(ctx.at(s.parsed, s.node) for s in sites))


# ---------------------------------------------------------------- entry point and raw HTTP


def _invented_entry(ctx: AuditContext) -> bool:
    """The app reaches for the gem through a class it does not have (`RubyLLM::Client.new`): that is the
    finding (rubyllm.hallucinated_constant), not an app that never uses RubyLLM."""
    return ctx.api.verified and any(
        c.verdict == "missing" and not c.in_test and _is_constant(c.call) for c in ctx.api.calls
    )


def check_no_entry_point(ctx: AuditContext) -> Iterator[Hit]:
    if not entry_sites(ctx) and not _invented_entry(ctx):
        yield Hit(
            rule="rubyllm.no_entry_point",
            message="RubyLLM is never used: no RubyLLM.chat, RubyLLM::Chat.new or RubyLLM.context.chat in app code.",
            evidence=(ctx.absent("RubyLLM.chat / RubyLLM::Chat.new / RubyLLM.context { }.chat"),),
        )


def _client_uses(parsed: ParsedSource) -> Iterator[tuple[Node, str]]:
    """Constants of HTTP clients/SDKs used as a call receiver or mixed in (`include HTTParty`)."""
    for node in of_type(parsed.root, "constant", "scope_resolution"):
        if node.parent is not None and node.parent.type == "scope_resolution":
            continue  # only the whole `A::B::C` chain
        text = parsed.text(node).lstrip(":")
        name = next((c for c in (*SDK_CLIENTS, *HTTP_CLIENTS) if text == c or text.startswith(c + "::")), None)
        if name is None:
            continue
        parent = node.parent
        is_receiver = _is_receiver(node)
        if is_receiver or _mixed_in(parsed, parent):
            yield node, name


def _is_receiver(node: Node) -> bool:
    parent = node.parent
    return parent is not None and parent.type == "call" and parent.child_by_field_name("receiver") == node


def _mixed_in(parsed: ParsedSource, parent: Node | None) -> bool:
    if parent is None or parent.type != "argument_list" or parent.parent is None:
        return False
    return method_name(parsed, parent.parent) in ("include", "extend")


def _url_strings(parsed: ParsedSource) -> Iterator[Node]:
    for node in of_type(parsed.root, *STRING_TYPES):
        if node.parent is not None and node.parent.type in STRING_TYPES:
            continue
        if LLM_URL.search(parsed.text(node)) and not _configures_rubyllm(parsed, node):
            yield node


def _configures_rubyllm(parsed: ParsedSource, node: Node) -> bool:
    """A URL given to RubyLLM itself (`config.openrouter_api_base = ...`) is not a bypass."""
    assign = enclosing(node, "assignment")
    left = assign.child_by_field_name("left") if assign is not None else None
    return left is not None and left.type == "call" and method_name(parsed, left).endswith("_api_base")


def raw_http_places(ctx: AuditContext) -> list[tuple[ParsedSource, Node, str]]:
    """(file, node, what) for every raw-HTTP route to an LLM in app Ruby and JavaScript."""
    places: list[tuple[ParsedSource, Node, str]] = []
    for parsed in [*app_ruby(ctx), *ctx.js_sources()]:
        urls = list(_url_strings(parsed))
        hinted = bool(urls) or bool(LLM_HINT.search(parsed.source.decode("utf-8", "replace")))
        for node, name in _client_uses(parsed) if parsed.kind == "ruby" else ():
            if name in SDK_CLIENTS or hinted:
                places.append((parsed, node, name))
        places.extend((parsed, node, "LLM endpoint URL") for node in urls)
    return places


def check_raw_http_bypass(ctx: AuditContext) -> Iterator[Hit]:
    places = raw_http_places(ctx)
    if places:
        kinds = ", ".join(sorted({what for _, _, what in places}))
        yield Hit(
            rule="rubyllm.raw_http_bypass",
            message=f"The LLM is reached with raw HTTP instead of ruby_llm ({kinds}).",
            evidence=tuple(dict.fromkeys(ctx.at(p, n) for p, n, _ in places)),
        )


# ---------------------------------------------------------------- verified API calls


ENTRY_CALLS = frozenset({"RubyLLM.chat", "Chat.new", "RubyLLM::Chat.new", "Context#chat"})


def _is_constant(name: str) -> bool:
    """`RubyLLM::Client` or its constructor `RubyLLM::Client.new`: an invented class, not a method."""
    name = name.removesuffix(".new")
    return "#" not in name and "." not in name


def _idiom(name: str) -> str:
    """What one invented idiom is: the methods invented on one class (`Chat#user`, `Chat#assistant`)."""
    for sep in ("#", "."):
        if sep in name:
            return name.split(sep, 1)[0]
    return name


def _api_rule(verdict: str, name: str) -> tuple[str, str]:
    """(rule, key) for an app call with this verdict: invented constants and rejected entry calls weigh most."""
    if verdict == "missing":
        return ("rubyllm.hallucinated_constant", name) if _is_constant(name) else ("rubyllm.missing_api", _idiom(name))
    return ("rubyllm.bad_entry_arguments", name) if name in ENTRY_CALLS else ("rubyllm.bad_arguments", name)


def _api_hits(ctx: AuditContext, verdict: str) -> Iterator[Hit]:
    if not ctx.api.verified:
        return
    by_call: dict[str, list[ApiCall]] = {}
    for call in ctx.api.calls:
        if call.verdict == verdict and not call.in_test:
            by_call.setdefault(call.call, []).append(call)
    kept = history_kept(ctx)
    for name, found in sorted(by_call.items()):
        first = found[0]
        message = f"`{name}`: {first.detail}" if first.detail else f"`{name}`: {verdict.replace('_', ' ')}"
        suggestions = list(dict.fromkeys(s for c in found for s in c.suggestions))
        if suggestions:
            message += "; did you mean " + " or ".join(f"`{s}`" for s in suggestions[:3]) + "?"
        evidence = tuple(dict.fromkeys(ctx.at_line(c.path, c.line) for c in found))
        core = any(on_core_path(ctx, c, kept) for c in found)
        if not core:
            message += " (only on a branch no user turn reaches as written)"
        rule, key = _api_rule(verdict, name)
        tags = frozenset({CORE_PATH}) if core else frozenset()
        yield Hit(rule=rule, message=message, evidence=evidence, key=key, tags=tags)


def check_missing_api(ctx: AuditContext) -> Iterator[Hit]:
    yield from _api_hits(ctx, "missing")


def check_bad_arguments(ctx: AuditContext) -> Iterator[Hit]:
    yield from _api_hits(ctx, "bad_arguments")


# ---------------------------------------------------------------- sending and reading the reply


def check_no_send(ctx: AuditContext) -> Iterator[Hit]:
    entries = entry_sites(ctx)
    if entries and not send_sites(ctx):
        yield Hit(
            rule="rubyllm.no_send",
            message="A RubyLLM chat is created but never sent a message: no ask/say/complete on it.",
            evidence=_evidence(ctx, entries),
        )


def _reads_content(flow: FileFlow) -> bool:
    return any(method_name(flow.parsed, n) == "content" for n in of_type(flow.parsed.root, "call"))


def _is_returned(node: Node) -> bool:
    """True when `node` is the value its method returns (last statement, through if/else/begin)."""
    parent = node.parent
    if parent is None:
        return False
    if parent.type in ("method", "singleton_method"):
        return parent.child_by_field_name("body") == node  # endless `def reply = chat.ask(...)`
    if parent.type not in ("body_statement", "then", "else", "begin", "parenthesized_statements"):
        return False
    named = [c for c in parent.named_children if c.type not in ("comment", "rescue", "ensure")]
    if not named or named[-1] != node:
        return False
    holder = parent.parent
    if holder is None:
        return False
    if parent.type == "body_statement":
        return holder.type in ("method", "singleton_method")
    while holder.type in ("elsif", "else") and holder.parent is not None:
        holder = holder.parent
    return (holder.type in ("if", "unless", "begin", "case", "when") and _is_returned(holder)) or (
        parent.type in ("begin", "parenthesized_statements") and _is_returned(parent)
    )


def _raw_use(parsed: ParsedSource, node: Node) -> bool:
    """Is this expression's value handed on as is (returned, stored, rendered, interpolated)?"""
    parent = node.parent
    if parent is None:
        return False
    if parent.type == "call" and parent.child_by_field_name("receiver") == node:
        name = method_name(parsed, parent)  # hash-style digging treats the reply as an HTTP payload
        return name == "to_s" or (name in HASH_ACCESS and _raw_use(parsed, parent))
    if parent.type == "element_reference" and parent.child_by_field_name("object") == node:
        return _raw_use(parsed, parent)
    if parent.type in ("interpolation", "pair", "argument_list", "return", "array"):
        return True
    if parent.type in ("assignment", "operator_assignment") and parent.child_by_field_name("right") == node:
        left = parent.child_by_field_name("left")
        if left is not None and left.type != "identifier":
            return True  # @reply = chat.ask(...): goes to the view or another request as is
        return left is not None and _local_used_raw(parsed, parent, parsed.text(left))
    return _is_returned(node)


def _local_used_raw(parsed: ParsedSource, assign: Node, name: str) -> bool:
    scope = enclosing(assign, "method", "singleton_method", "do_block", "block") or parsed.root
    for ident in of_type(scope, "identifier"):
        if parsed.text(ident) == name and ident.start_byte > assign.end_byte and _raw_use(parsed, ident):
            return True
    return False


def check_no_response_accessor(ctx: AuditContext) -> Iterator[Hit]:
    flows = [f for f in project_flows(ctx) if f.entries or f.sends]
    if any(_reads_content(f) for f in flows):
        return
    raw = [s for f in flows for s in f.sends if _raw_use(f.parsed, s.node)]
    if raw:
        yield Hit(
            rule="rubyllm.no_response_accessor",
            message="The reply of ask/complete is used as is; its text is never read with `.content`.",
            evidence=_evidence(ctx, raw),
        )


def check_openai_response_shape(ctx: AuditContext) -> Iterator[Hit]:
    evidence = tuple(dict.fromkeys(ctx.at(f.parsed, n) for f in project_flows(ctx) for n in payload_reads(f)))
    if evidence:
        yield Hit(
            rule="rubyllm.openai_response_shape",
            message="The ruby_llm reply (a RubyLLM::Message) is read as an OpenAI JSON payload "
            "(`choices`): the reply text is never obtained; use `.content`.",
            evidence=evidence,
            tags=frozenset({CORE_PATH}),
        )


# ---------------------------------------------------------------- multi-turn


def _replays(flows: list[FileFlow], aliases: dict[str, dict[str, str]]) -> bool:
    """add_message, `messages:` replay, chat.messages << ..., or a transcript joined into the prompt.

    `messages:` given to a chat entry (RubyLLM.chat(messages: ...)) is no replay: the gem rejects it."""
    for flow in flows:
        parsed = flow.parsed
        llm_file = bool(flow.entries or flow.sends)
        for node in of_type(parsed.root, "call"):
            name = method_name(parsed, node)
            recv = node.child_by_field_name("receiver")
            if name == "add_message" and (llm_file or flow.kind(recv) == CHAT):
                return True
            if name == "messages" and flow.kind(recv) == CHAT and _is_appended(parsed, node):
                return True
        for pair in of_type(parsed.root, "pair"):
            key = pair.child_by_field_name("key")
            named_messages = key is not None and parsed.text(key).strip("\"':") == "messages"
            if llm_file and named_messages and not _in_entry_call(flow, pair):
                return True
        for send in flow.sends:
            held = set(aliases.get(parsed.rel, {}))
            if any(_joins_turns(flow, c, held) for c in _prompt_folds(flow, send.node)):
                return True
    return False


ROLE_KEYS = frozenset({"role"})
FOLDS = frozenset({"join", "map", "filter_map", "collect", "sum"})


def _chain_root(node: Node) -> Node:
    """The start of a receiver chain: `a` in `a.b.c(...)[x].d`."""
    current = node
    while True:
        inner: Node | None = None
        if current.type == "call":
            inner = current.child_by_field_name("receiver")
        elif current.type == "element_reference":
            inner = current.child_by_field_name("object")
        elif current.type == "parenthesized_statements" and current.named_child_count == 1:
            inner = current.named_children[0]
        if inner is None:
            return current
        current = inner


def _reads_role(parsed: ParsedSource, node: Node) -> bool:
    """A block reading the role field of each element: `m[:role]`, `m["role"]`, `m.role`, `role:`."""
    for sub in of_type(node, "simple_symbol", "string", "hash_key_symbol", "call"):
        if sub.type == "call":
            if method_name(parsed, sub) in ROLE_KEYS and sub.child_by_field_name("receiver") is not None:
                return True
        elif parsed.text(sub).strip("\"':") in ROLE_KEYS:
            return True
    return False


STORE_ROOTS = frozenset({"session", "cookies", "@session", "@cookies"})


def _from_store(parsed: ParsedSource, root: Node, scope: Node, aliases: set[str], depth: int = 0) -> bool:
    """The folded collection is read from a conversation store: the session, a cookie jar, Rails.cache,
    a name the file holds one of those under, followed through local and instance variable assignments."""
    text = parsed.text(root)
    if text in STORE_ROOTS or text in aliases or text.startswith("Rails.cache"):
        return True
    parent = root.parent
    if root.type == "constant" and parent is not None and parsed.text(parent).startswith("Rails.cache"):
        return True
    if root.type not in ("identifier", "instance_variable") or depth > 4:
        return False
    where = parsed.root if root.type == "instance_variable" else scope
    for assign in of_type(where, "assignment", "operator_assignment"):
        left, right = assign.child_by_field_name("left"), assign.child_by_field_name("right")
        if left is None or right is None or parsed.text(left) != text:
            continue
        if any(_from_store(parsed, root, scope, aliases, depth + 1) for root in _value_roots(right)):
            return True
    return False


def _value_roots(node: Node) -> list[Node]:
    """Chain roots of an assigned value: `a || b` and `(x)` give both sides."""
    if node.type == "binary":
        return [
            n
            for side in ("left", "right")
            if (c := node.child_by_field_name(side)) is not None
            for n in _value_roots(c)
        ]
    return [_chain_root(node)]


def _prompt_folds(flow: FileFlow, send: Node) -> list[Node]:
    """The map/join calls building a send's prompt: in its arguments, or in a local the arguments name
    (followed to the method that builds it, one level)."""
    parsed = flow.parsed
    args = send.child_by_field_name("arguments")
    if args is None:
        return []
    found = [c for c in of_type(args, "call") if method_name(parsed, c) in FOLDS]
    scope = enclosing(send, "method", "singleton_method") or parsed.root
    names = {parsed.text(i) for i in of_type(args, "identifier")}
    for assign in of_type(scope, "assignment"):
        left, right = assign.child_by_field_name("left"), assign.child_by_field_name("right")
        if left is not None and right is not None and parsed.text(left) in names:
            found += [c for c in of_type(right, "call") if method_name(parsed, c) in FOLDS]
            names |= {method_name(parsed, c) for c in of_type(right, "call")}
    for method in of_type(parsed.root, "method"):
        if def_name(parsed, method) in names:
            found += [c for c in of_type(method, "call") if method_name(parsed, c) in FOLDS]
    return list({c.start_byte: c for c in found}.values())


def _joins_turns(flow: FileFlow, call: Node, aliases: set[str]) -> bool:
    """A `.map`/`.join` in the prompt that folds earlier turns into it (a transcript), judged by what is
    folded: records carrying a role, or a collection read from the conversation store."""
    parsed = flow.parsed
    if method_name(parsed, call) not in FOLDS:
        return False
    block = call.child_by_field_name("block")
    if block is not None and _reads_role(parsed, block):
        return True
    scope = enclosing(call, "method", "singleton_method") or parsed.root
    return _from_store(parsed, _chain_root(call), scope, aliases)


def _in_entry_call(flow: FileFlow, node: Node) -> bool:
    return any(e.node.start_byte <= node.start_byte < e.node.end_byte for e in flow.entries)


def _is_appended(parsed: ParsedSource, messages_call: Node) -> bool:
    parent = messages_call.parent
    if parent is None:
        return False
    if parent.type == "binary" and parent.child_by_field_name("left") == messages_call:
        op = parent.child_by_field_name("operator")
        return op is not None and parsed.text(op) == "<<"
    return parent.type == "call" and method_name(parsed, parent) in ("push", "concat", "append", "<<")


def _kept_chat_names(flow: FileFlow) -> Iterator[tuple[str, Node]]:
    """(holder, assignment) for each name or collection slot a chat is stored into."""
    for node in of_type(flow.parsed.root, "assignment", "operator_assignment"):
        left = node.child_by_field_name("left")
        if left is not None and flow.kind(node.child_by_field_name("right")) == CHAT:
            yield flow.parsed.text(left), node


def _class_is_long_lived(ctx: AuditContext, klass: str, flows: list[FileFlow]) -> bool:
    """Instances of `klass` outlive a request: Singleton, memoised in a store, or cached."""
    for flow in flows:
        parsed = flow.parsed
        for node in of_type(parsed.root, "call"):
            if method_name(parsed, node) == "include" and "Singleton" in parsed.text(node):
                owner = enclosing_class(node)
                if owner is not None and class_name(parsed, owner).endswith(klass):
                    return True
            if method_name(parsed, node) != "new" or not _creates(parsed, node, klass):
                continue
            if _stored_persistently(parsed, node):
                return True
    return False


def _creates(parsed: ParsedSource, new_call: Node, klass: str) -> bool:
    recv = new_call.child_by_field_name("receiver")
    if recv is None:
        owner = enclosing_class(new_call)
        return owner is not None and class_name(parsed, owner).rsplit("::", 1)[-1] == klass
    return parsed.text(recv).lstrip(":").rsplit("::", 1)[-1] == klass


def _stored_persistently(parsed: ParsedSource, node: Node) -> bool:
    current = node.parent
    while current is not None and current.type not in ("method", "class", "module", "program"):
        if current.type == "operator_assignment":
            return True  # @store[id] ||= Session.new / @instance ||= new
        if current.type == "assignment":
            left = current.child_by_field_name("left")
            return left is not None and left.type in (
                "element_reference",
                "class_variable",
                "global_variable",
                "constant",
            )
        keeping = current.parent is not None and method_name(parsed, current.parent) in KEEPING_BLOCK_CALLS
        if current.type in ("do_block", "block") and keeping:
            return True
        current = current.parent
    return False


def _registered(flow: FileFlow) -> bool:
    """A chat built inside the block of a registry's keeping call on long-lived state:
    `REGISTRY.compute_if_absent(id) { RubyLLM.chat }`, `@@chats.fetch(id) { ... }`, `(@chats ||= {})`."""
    parsed = flow.parsed
    for entry in flow.entries:
        block = enclosing(entry.node, "block", "do_block")
        owner = block.parent if block is not None else None
        if owner is None or owner.type != "call" or method_name(parsed, owner) not in KEEPING_BLOCK_CALLS:
            continue
        recv = owner.child_by_field_name("receiver")
        if recv is None:
            continue
        text = parsed.text(recv).lstrip(":")
        long_lived = recv.type in ("constant", "scope_resolution", "class_variable", "global_variable")
        class_level = (
            recv.type == "instance_variable" and enclosing(owner, "singleton_method", "singleton_class") is not None
        )
        if long_lived or class_level or text.startswith("Rails.cache"):
            return True
    return False


def _chat_kept(ctx: AuditContext, flows: list[FileFlow]) -> bool:
    if any(_registered(f) for f in flows):
        return True
    for flow in flows:
        for holder, assign in _kept_chat_names(flow):
            if holder.startswith(("@@", "$")) or holder[:1].isupper() or "[" in holder:
                return True
            if not holder.startswith("@"):
                continue
            if _stored_persistently(flow.parsed, assign.child_by_field_name("right") or assign):
                return True
            if enclosing(assign, "singleton_method", "singleton_class") is not None:
                return True
            owner = enclosing_class(assign)
            if owner is None or is_controller(flow.parsed):
                continue
            if _class_is_long_lived(ctx, class_name(flow.parsed, owner).rsplit("::", 1)[-1], flows):
                return True
    return False


def history_kept(ctx: AuditContext) -> bool:
    """Earlier turns reach the model: replayed into the chat, or the chat itself kept across requests."""
    cached = ctx.memo.get("history_kept")
    if isinstance(cached, bool):
        return cached
    flows = project_flows(ctx)
    kept = _replays(flows, store_aliases(app_ruby(ctx))) or _chat_kept(ctx, flows)
    ctx.memo["history_kept"] = kept
    return kept


def check_no_multi_turn(ctx: AuditContext) -> Iterator[Hit]:
    entries = entry_sites(ctx)
    kept = history_kept(ctx)
    ctx.derived["multi_turn"] = bool(entries) and kept
    # History handed to the entry call itself (`RubyLLM.chat(messages: ...)`) is an attempt at
    # multi-turn that the gem rejects: that defect is the entry call's, not counted twice here.
    batch = any("messages" in keyword_arguments(e.parsed, e.node) for e in entries)
    if entries and not kept and not batch:
        flows = project_flows(ctx)
        sends = [site for f in flows for site in f.sends]
        folds = [CallSite(f.parsed, c) for f in flows for site in f.sends for c in _prompt_folds(f, site.node)]
        yield Hit(
            rule="rubyllm.no_multi_turn",
            message="Every request builds a fresh chat and sends one message: no add_message replay, "
            "no chat kept across requests"
            + (" (what the prompt folds in with map/join is not earlier turns)." if folds else "."),
            evidence=_evidence(ctx, [*entries, *sends, *folds]),
            tags=frozenset({HISTORY_DISCARDED}),
        )


# ---------------------------------------------------------------- system prompt, model, provider


def _system_role(parsed: ParsedSource) -> bool:
    for pair in of_type(parsed.root, "pair"):
        key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
        if key is None or value is None or parsed.text(key).strip("\"':") != "role":
            continue
        if parsed.text(value).strip("\"':") in ("system", "developer"):
            return True
    return False


INSTRUCTION_CALLS = frozenset({"with_instructions", "with_runtime_instructions", "instructions"})


def _instructs_chat(flow: FileFlow, call: Node) -> bool:
    """An instructions call on a chat (or a value that may be one): never on a value known to be
    something else (a model attribute, a list) and, for a bare `instructions`, only on a known chat."""
    name = method_name(flow.parsed, call)
    if name not in INSTRUCTION_CALLS:
        return False
    kind = flow.kind(call.child_by_field_name("receiver"))
    return kind == CHAT if name == "instructions" else kind in (CHAT, None)


def check_no_system_prompt(ctx: AuditContext) -> Iterator[Hit]:
    for flow in project_flows(ctx):
        if any(_instructs_chat(flow, n) for n in of_type(flow.parsed.root, "call")):
            return
        if _system_role(flow.parsed):
            return
    entries = entry_sites(ctx)
    yield Hit(
        rule="rubyllm.no_system_prompt",
        message="No system prompt: with_instructions is never called and no system-role message is added"
        + (" to the chats created here." if entries else "."),
        evidence=_evidence(ctx, entries) or (ctx.absent("with_instructions(...) or add_message(role: :system, ...)"),),
    )


def check_model_not_current_sonnet(ctx: AuditContext) -> Iterator[Hit]:
    accepted = [str(s) for s in ctx.task.spec.rubyllm.get("sonnet_models", [])]
    slugs = project_slugs(ctx)
    if not slugs:
        yield Hit(
            rule="rubyllm.model_not_current_sonnet",
            message="No model slug is set anywhere: RubyLLM's default model (not Claude Sonnet) is used.",
            evidence=(ctx.absent("a model slug (model:, with_model, default_model =)"),),
        )
        return
    bad = [s for s in slugs if not is_accepted(s.value, accepted)]
    if bad:
        names = ", ".join(sorted({f'"{s.value}"' for s in bad}))
        yield Hit(
            rule="rubyllm.model_not_current_sonnet",
            message=f"Model slug {names} is not a current Claude Sonnet on OpenRouter "
            f"(expected one of: {', '.join(accepted[:3])}, ...).",
            evidence=tuple(dict.fromkeys(Evidence(path=s.path, line=s.line, snippet=s.snippet) for s in bad)),
        )


def _configures_openrouter_key(parsed: ParsedSource) -> bool:
    for node in of_type(parsed.root, "assignment", "operator_assignment"):
        left = node.child_by_field_name("left")
        if left is not None and left.type == "call" and method_name(parsed, left) == "openrouter_api_key":
            return True
    return False


def _foreign_providers(ctx: AuditContext) -> list[CallSite]:
    """Entry calls that pin a provider other than :openrouter."""
    wrong: list[CallSite] = []
    for site in entry_sites(ctx):
        for pair in of_type(site.node, "pair"):
            key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
            if key is None or value is None or site.parsed.text(key).strip("\"':") != "provider":
                continue
            text = site.parsed.text(value).strip("\"':")
            if value.type in ("simple_symbol", "string") and text != "openrouter":
                wrong.append(site)
    return wrong


def check_openrouter_not_configured(ctx: AuditContext) -> Iterator[Hit]:
    if not any(_configures_openrouter_key(p) for p in app_ruby(ctx)):
        yield Hit(
            rule="rubyllm.openrouter_not_configured",
            message="RubyLLM is never configured with openrouter_api_key "
            "(RubyLLM.configure / config.openrouter_api_key =).",
            evidence=(ctx.absent("config.openrouter_api_key = ENV[...] in a RubyLLM.configure block"),),
        )
        return
    wrong = _foreign_providers(ctx)
    if wrong:
        yield Hit(
            rule="rubyllm.openrouter_not_configured",
            message="Chats are routed to a provider other than :openrouter.",
            evidence=_evidence(ctx, wrong),
        )


CHECKS: list[Check] = [
    check_no_entry_point,
    check_raw_http_bypass,
    check_missing_api,
    check_bad_arguments,
    check_no_send,
    check_no_response_accessor,
    check_openai_response_shape,
    check_no_multi_turn,
    check_no_system_prompt,
    check_model_not_current_sonnet,
    check_openrouter_not_configured,
]
