"""Where a project creates RubyLLM chats and sends messages to them: a small per-file value flow.

Invariants: kinds are inferred from Ruby syntax only (constants, assignments, parameter defaults,
fluent `with_*` chains, memoised readers), per file and to a fixed point; a name is a chat holder
only when something chat-valued reaches it, or (fallback) when its name says so and nothing
non-chat was assigned to it. Tests are never analysed here: callers pass app sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import (
    LLM_CONSTANT,
    SEND_METHODS,
    CallSite,
    app_ruby,
    method_name,
)

MODULE = "module"
CHAT = "chat"
LLM_OBJECT = "llm_object"  # an instance of some other RubyLLM constant (often an invented client)
CHAT_CLASS = "chat_class"  # the class RubyLLM::Chat itself, passed around as a value (`chat_class: RubyLLM::Chat`)
CLASS_ATTRIBUTE_MACROS = frozenset(
    {"class_attribute", "cattr_accessor", "mattr_accessor", "cattr_reader", "mattr_reader"}
)
OTHER = "other"
ATTEMPTED_SEND_METHODS = SEND_METHODS | {"chat"}

FLUENT_METHODS = frozenset(
    {
        "with_instructions",
        "with_model",
        "with_temperature",
        "with_params",
        "with_headers",
        "with_schema",
        "with_tool",
        "with_tools",
        "with_thinking",
        "with_context",
        "on_new_message",
        "on_end_message",
        "on_tool_call",
        "on_tool_result",
        "tap",
        "then",
        "yield_self",
    }
)
VARIABLE_TYPES = ("identifier", "instance_variable", "class_variable", "global_variable", "constant")
LITERAL_TYPES = frozenset(
    {"string", "integer", "float", "array", "hash", "nil", "true", "false", "simple_symbol", "lambda"}
)
CHATTY_NAME = re.compile(r"(^|_)(chat|llm|conversation|llm_chat|ai_chat)(_|$)", re.IGNORECASE)


@dataclass
class FileFlow:
    """Kinds of the names of one file, and the chat entry/send calls found with them."""

    parsed: ParsedSource
    kinds: dict[str, str] = field(default_factory=dict)  # variable text -> MODULE | CHAT | OTHER
    chat_methods: set[str] = field(default_factory=set)
    module_methods: set[str] = field(default_factory=set)  # helpers returning RubyLLM or a RubyLLM.context
    entries: list[CallSite] = field(default_factory=list)
    sends: list[CallSite] = field(default_factory=list)

    def kind(self, node: Node | None) -> str | None:
        """MODULE, CHAT, OTHER or None (unknown) for an expression node."""
        if node is None:
            return None
        text = self.parsed.text(node)
        t = node.type
        if t in ("constant", "scope_resolution") and text.lstrip(":") == LLM_CONSTANT:
            return MODULE
        if t in ("constant", "scope_resolution") and text.lstrip(":") == f"{LLM_CONSTANT}::Chat":
            return CHAT_CLASS
        if t in VARIABLE_TYPES:
            if t == "identifier" and text in self.chat_methods:
                return CHAT
            if t == "identifier" and text in self.module_methods:
                return MODULE
            return self.kinds.get(text)
        if t in LITERAL_TYPES:
            return OTHER
        if t in ("parenthesized_statements", "begin", "body_statement"):
            named = [c for c in node.named_children if c.type not in ("rescue", "ensure", "else", "comment")]
            return self.kind(named[-1]) if named else None
        if t == "rescue_modifier":
            return self.kind(node.child_by_field_name("body"))
        if t == "binary":
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            sides = (self.kind(left), self.kind(right))
            return CHAT if CHAT in sides else (MODULE if MODULE in sides else None)
        if t == "operator_assignment" or t == "assignment":
            return self.kind(node.child_by_field_name("right"))
        if t == "call":
            return self._call_kind(node)
        return None

    def _call_kind(self, node: Node) -> str | None:
        method = method_name(self.parsed, node)
        recv = node.child_by_field_name("receiver")
        if recv is None or self.parsed.text(recv) in ("self", "self.class"):
            if method in self.chat_methods:
                return CHAT
            if method in self.module_methods:
                return MODULE
            if recv is None:
                return None
        recv_text = self.parsed.text(recv).lstrip(":")
        recv_kind = self.kind(recv)
        if method == "chat" and recv_kind == MODULE:
            return CHAT
        if method == "new" and (recv_text == f"{LLM_CONSTANT}::Chat" or recv_kind == CHAT_CLASS):
            return CHAT
        if method == "context" and recv_kind == MODULE:
            return MODULE
        if method in FLUENT_METHODS and recv_kind == CHAT:
            return CHAT
        if method == "new" and recv_text.startswith(LLM_CONSTANT + "::"):
            return LLM_OBJECT
        if recv_kind == MODULE or recv_text.startswith(LLM_CONSTANT):
            return None  # another RubyLLM value (models, config...): not a chat, not an app object
        if _root_constant(self.parsed, recv) is not None or recv.type in LITERAL_TYPES:
            return OTHER
        return None


def _root_constant(parsed: ParsedSource, node: Node) -> str | None:
    """The constant a call chain starts from (`Foo` for `Foo::Bar.new.x`), if any."""
    current: Node | None = node
    while current is not None and current.type == "call":
        current = current.child_by_field_name("receiver")
    if current is not None and current.type in ("constant", "scope_resolution"):
        return parsed.text(current).lstrip(":")
    return None


def _bind(flow: FileFlow, name: str, kind: str | None) -> bool:
    """Record `name` as `kind`; CHAT and MODULE win over OTHER. True when something changed."""
    if kind is None or flow.kinds.get(name) in (CHAT, MODULE, LLM_OBJECT, CHAT_CLASS) or flow.kinds.get(name) == kind:
        return False
    flow.kinds[name] = kind
    return True


def _propagate_once(flow: FileFlow) -> bool:
    parsed = flow.parsed
    changed = False
    for node in of_type(parsed.root, "assignment", "operator_assignment"):
        left = node.child_by_field_name("left")
        if left is not None and left.type in VARIABLE_TYPES:
            changed |= _bind(flow, parsed.text(left), flow.kind(node.child_by_field_name("right")))
    for node in of_type(parsed.root, "keyword_parameter", "optional_parameter"):
        name = node.child_by_field_name("name")
        if name is not None:
            changed |= _bind(flow, parsed.text(name), flow.kind(node.child_by_field_name("value")))
    for node in of_type(parsed.root, "method"):
        changed |= _method_returns_llm(flow, node)
    for node in of_type(parsed.root, "call"):
        changed |= _block_params(flow, node)
    changed |= _attr_readers(flow)
    changed |= _class_attributes(flow)
    return changed


def _class_attributes(flow: FileFlow) -> bool:
    """`class_attribute :client, default: RubyLLM` (and cattr/mattr forms): `client` answers the module
    (or a chat, or the chat class) as its default value, so calls through it are typed like that value."""
    changed = False
    for call in of_type(flow.parsed.root, "call"):
        if method_name(flow.parsed, call) not in CLASS_ATTRIBUTE_MACROS:
            continue
        args = call.child_by_field_name("arguments")
        if args is None:
            continue
        default = next(
            (
                p.child_by_field_name("value")
                for p in of_type(args, "pair")
                if flow.parsed.text(p.child_by_field_name("key") or p).strip(":") == "default"
            ),
            None,
        )
        kind = flow.kind(default)
        for sym in args.named_children:
            if sym.type != "simple_symbol" or kind is None:
                continue
            name = flow.parsed.text(sym).lstrip(":")
            holder = flow.module_methods if kind == MODULE else flow.chat_methods if kind == CHAT else None
            if holder is not None and name not in holder:
                holder.add(name)
                changed = True
            elif kind == CHAT_CLASS:
                changed |= _bind(flow, name, CHAT_CLASS)
    return changed


def _method_returns_llm(flow: FileFlow, method: Node) -> bool:
    """A helper whose body ends in a chat (`def chat = RubyLLM.chat`) or in the module or a context
    (`def llm = RubyLLM.context { ... }`): calls to it are typed like its result."""
    name_node = method.child_by_field_name("name")
    body = method.child_by_field_name("body")
    if name_node is None or body is None:
        return False
    name = flow.parsed.text(name_node)
    if name in flow.chat_methods or name in flow.module_methods:
        return False
    kind = flow.kind(body)
    if kind == CHAT:
        flow.chat_methods.add(name)
    elif kind == MODULE:
        flow.module_methods.add(name)
    else:
        return False
    return True


def _block_params(flow: FileFlow, call: Node) -> bool:
    """`RubyLLM.chat.tap { |c| ... }` or the block form of a fluent call: its parameters are the chat."""
    block = call.child_by_field_name("block")
    method = method_name(flow.parsed, call)
    if block is None or method not in FLUENT_METHODS:
        return False
    recv = call.child_by_field_name("receiver")
    if flow.kind(recv) != CHAT:
        return False
    params = block.child_by_field_name("parameters")
    if params is None:
        return False
    changed = False
    for ident in params.named_children:
        if ident.type == "identifier":
            changed |= _bind(flow, flow.parsed.text(ident), CHAT)
    return changed


def _attr_readers(flow: FileFlow) -> bool:
    changed = False
    for call in of_type(flow.parsed.root, "call"):
        if method_name(flow.parsed, call) not in ("attr_reader", "attr_accessor"):
            continue
        args = call.child_by_field_name("arguments")
        for sym in args.named_children if args is not None else []:
            name = flow.parsed.text(sym).lstrip(":")
            is_chat = sym.type == "simple_symbol" and flow.kinds.get(f"@{name}") == CHAT
            if is_chat and name not in flow.chat_methods:
                flow.chat_methods.add(name)
                changed = True
    return changed


def analyse(parsed: ParsedSource) -> FileFlow:
    flow = FileFlow(parsed=parsed)
    for _ in range(8):
        if not _propagate_once(flow):
            break
    for node in of_type(parsed.root, "call"):
        site = CallSite(parsed, node)
        recv = node.child_by_field_name("receiver")
        if site.method in ("chat", "new") and flow.kind(node) == CHAT and flow.kind(recv) != CHAT:
            flow.entries.append(site)
        elif site.method in SEND_METHODS and recv is not None and _is_chat_receiver(flow, recv):
            flow.sends.append(site)
        elif site.method in ATTEMPTED_SEND_METHODS and flow.kind(recv) == LLM_OBJECT:
            flow.sends.append(site)  # RubyLLM::Client.new.chat(messages: ...): an attempted send
    return flow


def _is_chat_receiver(flow: FileFlow, recv: Node) -> bool:
    kind = flow.kind(recv)
    if kind is not None:
        return kind == CHAT
    if recv.type not in VARIABLE_TYPES or recv.type == "constant":
        return False
    return bool(CHATTY_NAME.search(flow.parsed.text(recv).lstrip("@$")))


def project_flows(ctx: AuditContext) -> list[FileFlow]:
    """One `FileFlow` per app Ruby file (app/, lib/, config/), computed once per context (kept in
    the context's memo, never in module state, so concurrent audits cannot see each other's)."""
    cached = ctx.memo.get("llm_flows")
    if isinstance(cached, list):
        return cached
    flows = [analyse(p) for p in app_ruby(ctx)]
    _add_verified_sends(ctx, flows)
    ctx.memo["llm_flows"] = flows
    return flows


VERIFIED_SENDS = frozenset({f"Chat#{m}" for m in SEND_METHODS})


def _add_verified_sends(ctx: AuditContext, flows: list[FileFlow]) -> None:
    """Sends the API verifier typed as `Chat#ask` (through injected callables, other files' values) that
    the per-file flow could not see: the verifier's whole-project inference is the stronger witness."""
    by_file = {f.parsed.rel: f for f in flows}
    for call in ctx.api.calls:
        flow = by_file.get(call.path)
        if call.in_test or call.call not in VERIFIED_SENDS or flow is None:
            continue
        if any(s.line == call.line and s.method == call.call.split("#")[1] for s in flow.sends):
            continue
        for node in of_type(flow.parsed.root, "call"):
            site = CallSite(flow.parsed, node)
            if site.line == call.line and site.method == call.call.split("#")[1] and site.receiver:
                flow.sends.append(site)
                break


def entry_sites(ctx: AuditContext) -> list[CallSite]:
    return [s for f in project_flows(ctx) for s in f.entries]


def send_sites(ctx: AuditContext) -> list[CallSite]:
    return [s for f in project_flows(ctx) for s in f.sends]
