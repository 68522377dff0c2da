"""The value types of the verifier's small type inference, and documented facts about gem return values.

Invariants: a type is either a gem constant used as a receiver (`const`), an instance of a gem class
(`instance`), an Array of gem instances (`array`), or `opaque` (derived from a gem value we could not
resolve: calls on it are reported as unverifiable); `record`/`record_class` are a project ActiveRecord
model that calls a gem macro (`acts_as_chat`), named by the project's class. `None` always means "not a
gem value".
Class names are fully qualified ("RubyLLM::Chat").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TypeKind = Literal["const", "instance", "array", "opaque", "record", "record_class", "callable"]


@dataclass(frozen=True)
class RType:
    kind: TypeKind
    name: str  # class (const/instance), element class (array), origin (opaque), "file:byte" of a lambda (callable)

    @staticmethod
    def const(name: str) -> RType:
        return RType("const", name)

    @staticmethod
    def instance(name: str) -> RType:
        return RType("instance", name)

    @staticmethod
    def array(element: str) -> RType:
        return RType("array", element)

    @staticmethod
    def opaque(origin: str) -> RType:
        return RType("opaque", origin)


# Documented return values that a static index cannot see (the method body ends in a call of another
# object, a memoised ivar, ...). Keys: (class relative to the gem namespace, "" for the namespace module,
# method, singleton). Values: "Name" (instance), "[Name]" (Array of Name). Source for ruby_llm:
# ../shared/reference/ruby_llm-api.md sections 1.1-1.3 (ask/say/complete return a Message, ...).
KNOWN_RETURNS: dict[str, dict[tuple[str, str, bool], str]] = {
    "ruby_llm": {
        ("", "chat", True): "Chat",
        ("", "context", True): "Context",
        ("", "config", True): "Configuration",
        ("", "models", True): "Models",
        ("Context", "chat", False): "Chat",
        ("Context", "config", False): "Configuration",
        ("Chat", "ask", False): "Message",
        ("Chat", "say", False): "Message",
        ("Chat", "complete", False): "Message",
        ("Chat", "add_message", False): "Message",
        ("Chat", "messages", False): "[Message]",
        ("Chat", "model", False): "Model::Info",
        ("Models", "find", False): "Model::Info",
        ("Models", "find", True): "Model::Info",
        ("Models", "all", False): "[Model::Info]",
        ("Models", "chat_models", False): "[Model::Info]",
        ("Agent", "chat", False): "Chat",
        ("", "embed", True): "Embedding",
        ("", "moderate", True): "Moderation",
        ("", "paint", True): "Image",
        ("", "transcribe", True): "Transcription",
        ("Context", "embed", False): "Embedding",
        ("Context", "moderate", False): "Moderation",
        ("Context", "paint", False): "Image",
        ("Context", "transcribe", False): "Transcription",
        ("Embedding", "embed", True): "Embedding",
        ("Moderation", "moderate", True): "Moderation",
        ("Image", "paint", True): "Image",
        ("Transcription", "transcribe", True): "Transcription",
        # Rails integration: the persisted chat answers with the library's Message (to_llm.complete)
        ("ActiveRecord::ChatMethods", "ask", False): "Message",
        ("ActiveRecord::ChatMethods", "say", False): "Message",
        ("ActiveRecord::ChatMethods", "complete", False): "Message",
        ("ActiveRecord::ChatMethods", "to_llm", False): "Chat",
        ("ActiveRecord::ChatLegacyMethods", "ask", False): "Message",
        ("ActiveRecord::ChatLegacyMethods", "say", False): "Message",
        ("ActiveRecord::ChatLegacyMethods", "complete", False): "Message",
        ("ActiveRecord::ChatLegacyMethods", "to_llm", False): "Chat",
        ("ActiveRecord::MessageMethods", "to_llm", False): "Message",
        ("ActiveRecord::MessageLegacyMethods", "to_llm", False): "Message",
        ("ActiveRecord::ModelMethods", "to_llm", False): "Model::Info",
    }
}

# Real names for names the gem lacks but generated code often invents (reference doc section 4.1:
# `response.text`, `chat.send_message`, `chat.user(...)`): (class relative to the namespace, method)
# -> the real method, offered as "did you mean" where spelling distance finds nothing.
KNOWN_MISNAMES: dict[str, dict[tuple[str, str], str]] = {
    "ruby_llm": {
        ("Message", "text"): "content",
        ("Message", "body"): "content",
        ("Message", "message"): "content",
        ("Message", "reply"): "content",
        ("Message", "usage"): "tokens",
        ("Chat", "send_message"): "ask",
        ("Chat", "chat"): "ask",
        ("Chat", "prompt"): "ask",
        ("Chat", "user"): "add_message",
        ("Chat", "assistant"): "add_message",
        ("Chat", "system"): "with_instructions",
        ("Chat", "with_system_prompt"): "with_instructions",
        ("Chat", "system_prompt"): "with_instructions",
        ("Chat", "with_system_message"): "with_instructions",
    }
}

# Types of the first block parameter: (class, method, singleton) -> type as in KNOWN_RETURNS.
KNOWN_BLOCK_PARAMS: dict[str, dict[tuple[str, str, bool], str]] = {
    "ruby_llm": {
        ("", "configure", True): "Configuration",
        ("", "context", True): "Configuration",
        ("Chat", "ask", False): "Chunk",
        ("Chat", "say", False): "Chunk",
        ("Chat", "complete", False): "Chunk",
        ("Chat", "on_end_message", False): "Message",
        ("Chat", "each", False): "Message",
        ("Models", "each", False): "Model::Info",
        ("ActiveRecord::ChatMethods", "ask", False): "Chunk",
        ("ActiveRecord::ChatMethods", "say", False): "Chunk",
        ("ActiveRecord::ChatMethods", "complete", False): "Chunk",
        ("ActiveRecord::ChatLegacyMethods", "ask", False): "Chunk",
        ("ActiveRecord::ChatLegacyMethods", "say", False): "Chunk",
        ("ActiveRecord::ChatLegacyMethods", "complete", False): "Chunk",
    }
}

# Methods that iterate an Enumerable: their first block parameter is an element.
ITERATORS = frozenset(
    {
        "each",
        "map",
        "collect",
        "flat_map",
        "select",
        "filter",
        "reject",
        "find",
        "detect",
        "each_with_index",
        "each_with_object",
        "filter_map",
        "sum",
        "count",
        "any?",
        "all?",
        "none?",
        "group_by",
        "partition",
        "sort_by",
        "min_by",
        "max_by",
        "reverse_each",
        "take_while",
        "drop_while",
        "find_all",
        "index",
    }
)
# Methods of an Array (or Enumerable) that return one element / a sub-array.
ELEMENT_METHODS = frozenset({"first", "last", "sample", "find", "detect", "min_by", "max_by", "fetch", "at"})
SUBARRAY_METHODS = frozenset(
    {"select", "filter", "reject", "to_a", "reverse", "sort_by", "last", "first", "take", "drop", "compact"}
)

# Methods every Ruby object answers (Object/Kernel/BasicObject) and test-double API: never gem calls.
OBJECT_METHODS = frozenset(
    {
        "class",
        "is_a?",
        "kind_of?",
        "instance_of?",
        "respond_to?",
        "send",
        "public_send",
        "__send__",
        "method",
        "methods",
        "public_methods",
        "object_id",
        "nil?",
        "tap",
        "then",
        "yield_self",
        "dup",
        "clone",
        "freeze",
        "frozen?",
        "inspect",
        "to_s",
        "hash",
        "==",
        "!=",
        "===",
        "=~",
        "eql?",
        "equal?",
        "instance_variable_get",
        "instance_variable_set",
        "instance_variable_defined?",
        "instance_variables",
        "itself",
        "display",
        "extend",
        "singleton_class",
        "define_singleton_method",
        "present?",
        "blank?",
        "presence",
        "try",
        "try!",
        "in?",
        "to_json",
        "as_json",
        "to_param",
        "to_query",
        "instance_values",
        "deep_dup",
        "duplicable?",
        "acts_like?",
        "html_safe?",
    }
)
# What classes and modules answer on top of OBJECT_METHODS (Module/Class).
MODULE_METHODS = frozenset(
    {
        "name",
        "ancestors",
        "const_get",
        "const_defined?",
        "constants",
        "instance_method",
        "method_defined?",
        "public_method_defined?",
        "private_method_defined?",
        "instance_methods",
        "public_instance_methods",
        "allocate",
        "superclass",
        "module_eval",
        "class_eval",
        "class_exec",
        "include?",
        "<",
        "<=",
    }
)
DOUBLE_METHODS = frozenset(
    {
        "stub",
        "stubs",
        "expects",
        "any_instance",
        "stub_any_instance",
        "unstub",
        "should_receive",
        "should_not_receive",
        "stub_chain",
        "stub!",
        "mock",
        "returns",
        "with",
        "never",
        "once",
        "twice",
    }
)
ENUMERABLE_METHODS = ITERATORS | frozenset(
    {
        "to_a",
        "entries",
        "first",
        "include?",
        "member?",
        "min",
        "max",
        "sort",
        "take",
        "drop",
        "zip",
        "each_slice",
        "each_cons",
        "reduce",
        "inject",
        "tally",
        "uniq",
        "lazy",
        "to_set",
        "chunk_while",
        "slice_when",
        "minmax",
        "sum",
        "cycle",
        "each_entry",
        "find_index",
        "grep",
        "grep_v",
        "filter_map",
    }
)


def parse_known(value: str, namespace: str) -> RType:
    """'Name' -> instance of Namespace::Name; '[Name]' -> array of it."""
    if value.startswith("[") and value.endswith("]"):
        return RType.array(qualify(value[1:-1], namespace))
    return RType.instance(qualify(value, namespace))


def qualify(name: str, namespace: str) -> str:
    if not name:
        return namespace
    return name if name == namespace or name.startswith(namespace + "::") else f"{namespace}::{name}"


def relative(name: str, namespace: str) -> str:
    """'RubyLLM::Chat' -> 'Chat'; the namespace itself -> ''."""
    if name == namespace:
        return ""
    return name[len(namespace) + 2 :] if name.startswith(namespace + "::") else name


def display_call(rtype: RType, method: str, namespace: str) -> str:
    """The contract's call names: `RubyLLM.chat`, `Chat.new`, `Chat#ask`."""
    if rtype.kind == "opaque" and ("#" in rtype.name or "." in rtype.name):
        return f"{relative(rtype.name, namespace)}.{method}"
    rel = relative(rtype.name, namespace)
    if rtype.kind in ("const", "opaque"):
        return f"{rel or rtype.name}.{method}"
    return f"{rel or rtype.name}#{method}"
