"""Whether any test runs the app with its API key missing (the template's "missing env" error path).

Invariants: recognised by what a test does, never by its name: it removes or blanks an environment
variable (`ENV.delete`, `ENV[...] = nil/""`, an env-override helper given an UPPER_CASE key with
nil/""), blanks a `RubyLLM` configuration value, stubs ENV to return nil/"", or names an error the
missing key raises (the gem's `ConfigurationError`, a `KeyError` of a strict `ENV.fetch`, the class
the app raises in its own key check).
"""

from __future__ import annotations

import re

from shipbench.audit.ruby.parse import Node, ParsedSource, of_type
from shipbench.tasks.rails_chat.checks._common import LLM_CONSTANT, method_name

ENV_NAME = re.compile(r"^[\"':]?[A-Z][A-Z0-9_]*[A-Z0-9][\"']?:?$")
GEM_MISSING_CONFIG = "ConfigurationError"
STUBS = frozenset({"stub", "stubs", "receive", "and_return", "returns", "to_return"})


def _blank(parsed: ParsedSource, node: Node | None) -> bool:
    if node is None:
        return False
    if node.type == "nil":
        return True
    return node.type == "string" and not parsed.text(node).strip("\"'")


def _is_env(parsed: ParsedSource, node: Node | None) -> bool:
    return node is not None and parsed.text(node).lstrip(":") == "ENV"


def _root_receiver(node: Node) -> Node:
    current = node
    while current.type == "call" and current.child_by_field_name("receiver") is not None:
        receiver = current.child_by_field_name("receiver")
        assert receiver is not None
        current = receiver
    return current


def _env_cleared(parsed: ParsedSource) -> bool:
    for call in of_type(parsed.root, "call"):
        if method_name(parsed, call) == "delete" and _is_env(parsed, call.child_by_field_name("receiver")):
            return True
    for assign in of_type(parsed.root, "assignment", "operator_assignment"):
        left = assign.child_by_field_name("left")
        if left is None or not _blank(parsed, assign.child_by_field_name("right")):
            continue
        if left.type == "element_reference" and _is_env(parsed, left.child_by_field_name("object")):
            return True
        if left.type == "call" and parsed.text(_root_receiver(left)).lstrip(":") == LLM_CONSTANT:
            return True  # RubyLLM.config.openrouter_api_key = nil
    return False


def _env_override_blank(parsed: ParsedSource) -> bool:
    """`ClimateControl.modify(OPENROUTER_API_KEY: nil)`, `with_env("X_KEY" => "")`: any call given an
    environment-style key with a blank value."""
    for pair in of_type(parsed.root, "pair"):
        key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
        if key is not None and ENV_NAME.match(parsed.text(key)) and _blank(parsed, value):
            return True
    return False


def _configure_blank(parsed: ParsedSource) -> bool:
    """`RubyLLM.configure { |c| c.openrouter_api_key = nil }`."""
    for call in of_type(parsed.root, "call"):
        recv = call.child_by_field_name("receiver")
        if method_name(parsed, call) != "configure" or recv is None or parsed.text(recv).lstrip(":") != LLM_CONSTANT:
            continue
        block = call.child_by_field_name("block")
        if block is None:
            continue
        for assign in of_type(block, "assignment"):
            left = assign.child_by_field_name("left")
            if left is not None and left.type == "call" and _blank(parsed, assign.child_by_field_name("right")):
                return True
    return False


def _env_stubbed_blank(parsed: ParsedSource) -> bool:
    """`ENV.stub(:[], nil)`, `ENV.stubs(:fetch).returns(nil)`, `allow(ENV).to receive(:[]).and_return(nil)`."""
    for call in of_type(parsed.root, "call"):
        if method_name(parsed, call) not in STUBS:
            continue
        chain = parsed.text(call)
        if "ENV" not in re.findall(r"\b[A-Z]+\b", chain):
            continue
        args = call.child_by_field_name("arguments")
        if args is not None and any(_blank(parsed, a) for a in args.named_children):
            return True
    return False


def _names_missing_key_error(parsed: ParsedSource, raised: set[str]) -> bool:
    for node in of_type(parsed.root, "constant", "scope_resolution"):
        leaf = parsed.text(node).lstrip(":").rsplit("::", 1)[-1]
        if leaf == GEM_MISSING_CONFIG or leaf in raised:
            return True
    return False


def simulates_missing_key(tests: list[ParsedSource], raised_by_key_checks: set[str]) -> bool:
    """Some test file runs code with the key absent (see the module docstring)."""
    leaves = {r.lstrip(":").rsplit("::", 1)[-1] for r in raised_by_key_checks} - {"RuntimeError"}
    return any(
        _env_cleared(p)
        or _env_override_blank(p)
        or _configure_blank(p)
        or _env_stubbed_blank(p)
        or _names_missing_key_error(p, leaves)
        for p in tests
    )
