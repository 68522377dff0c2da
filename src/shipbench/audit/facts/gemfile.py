"""Gemfile declarations read from the tree-sitter-ruby syntax tree (never by regex).

Invariants: only receiver-less `gem` calls with a literal first argument count; groups come from
every enclosing `group ... do`/`{}` block (outermost first) plus `group:`/`groups:` options; a gem
declared twice keeps its first production declaration (no group, or default/production among its
groups), else its first one. Comments are not calls, so commented-out gems never count. Parsing
never raises: a broken Gemfile yields whatever calls tree-sitter recovered, with `has_error` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shipbench.audit.facts.model import GemDecl
from shipbench.audit.ruby.parse import Node, ParsedSource, line_of, of_type, parse_ruby

_BLOCK_TYPES = ("do_block", "block")
_GROUP_OPTION_KEYS = ("group", "groups")


@dataclass
class GemfileInfo:
    """What one Gemfile declares."""

    gems: dict[str, GemDecl] = field(default_factory=dict)
    ruby_pin_line: int | None = None  # line of a `ruby "x.y.z"` / `ruby file: ...` directive
    has_error: bool = False


def parse_gemfile(rel: str, source: bytes) -> GemfileInfo:
    parsed = parse_ruby(rel, source)
    info = GemfileInfo(has_error=parsed.has_error)
    for call in of_type(parsed.root, "call"):
        name = _bare_method(parsed, call)
        if name == "gem":
            decl = _gem_decl(parsed, call)
            if decl is not None:
                _keep(info.gems, decl)
        elif name == "ruby" and info.ruby_pin_line is None and _pins_ruby(parsed, call):
            info.ruby_pin_line = line_of(call)
    return info


def declares_rails(info: GemfileInfo) -> bool:
    return "rails" in info.gems or "railties" in info.gems


def _keep(gems: dict[str, GemDecl], decl: GemDecl) -> None:
    current = gems.get(decl.name)
    if current is None or (not current.in_production and decl.in_production):
        gems[decl.name] = decl


def _bare_method(parsed: ParsedSource, call: Node) -> str:
    """The method name of a call without receiver ('' for `x.gem` and other receiver calls)."""
    if call.child_by_field_name("receiver") is not None:
        return ""
    method = call.child_by_field_name("method")
    return parsed.text(method) if method is not None else ""


def _arguments(call: Node) -> list[Node]:
    args = call.child_by_field_name("arguments")
    if args is None:
        return []
    return [c for c in args.named_children if c.type != "comment"]


def _options(parsed: ParsedSource, args: list[Node]) -> dict[str, Node]:
    """`key: value` / `:key => value` pairs, bare or inside an explicit `{...}` hash."""
    pairs: list[Node] = []
    for arg in args:
        if arg.type == "pair":
            pairs.append(arg)
        elif arg.type == "hash":
            pairs.extend(c for c in arg.named_children if c.type == "pair")
    out: dict[str, Node] = {}
    for pair in pairs:
        key = pair.child_by_field_name("key")
        value = pair.child_by_field_name("value")
        if key is not None and value is not None:
            out.setdefault(_key_name(parsed, key), value)
    return out


def _key_name(parsed: ParsedSource, key: Node) -> str:
    text = parsed.text(key)
    if key.type == "hash_key_symbol":
        return text
    literal = literal_text(parsed, key)
    return literal if literal is not None else text


def literal_text(parsed: ParsedSource, node: Node) -> str | None:
    """The value of a string or symbol literal without quotes/colon; None for anything else."""
    if node.type in ("string", "delimited_symbol"):
        if any(c.type == "interpolation" for c in node.named_children):
            return None
        return "".join(parsed.text(c) for c in node.named_children if c.type == "string_content")
    if node.type == "simple_symbol":
        return parsed.text(node).lstrip(":")
    if node.type in ("hash_key_symbol", "bare_symbol", "bare_string"):
        return parsed.text(node)
    return None


def _names(parsed: ParsedSource, node: Node) -> list[str]:
    """Symbols/strings of a literal, an array literal, or a `%i[]`/`%w[]` list."""
    single = literal_text(parsed, node)
    if single is not None:
        return [single]
    if node.type in ("array", "symbol_array", "string_array"):
        return [v for c in node.named_children if (v := literal_text(parsed, c)) is not None]
    return []


def _gem_decl(parsed: ParsedSource, call: Node) -> GemDecl | None:
    args = _arguments(call)
    if not args:
        return None
    name = literal_text(parsed, args[0])
    if not name:
        return None
    options = _options(parsed, args[1:])
    versions = [v for a in args[1:] if a.type == "string" and (v := literal_text(parsed, a)) is not None]
    groups = _block_groups(parsed, call)
    for key in _GROUP_OPTION_KEYS:
        if key in options:
            groups.extend(_names(parsed, options[key]))
    return GemDecl(
        name=name,
        path=parsed.rel,
        line=line_of(call),
        groups=list(dict.fromkeys(groups)),
        require=_require_value(parsed, options.get("require")),
        version=versions,
    )


def _require_value(parsed: ParsedSource, node: Node | None) -> bool | str:
    if node is None:
        return True
    if node.type == "false":
        return False
    names = _names(parsed, node)
    return names[0] if names else True


def _block_groups(parsed: ParsedSource, call: Node) -> list[str]:
    """Groups of every enclosing `group :a, :b do ... end` (outermost first)."""
    found: list[list[str]] = []
    node = call.parent
    while node is not None:
        if node.type in _BLOCK_TYPES and node.parent is not None and node.parent.type == "call":
            owner = node.parent
            if _bare_method(parsed, owner) == "group":
                found.append([n for a in _arguments(owner) if a.type != "pair" for n in _names(parsed, a)])
        node = node.parent
    return [g for groups in reversed(found) for g in groups]


def _pins_ruby(parsed: ParsedSource, call: Node) -> bool:
    """`ruby "3.3.0"`, `ruby "~> 3.3"` or `ruby file: ".ruby-version"`: a literal version source."""
    args = _arguments(call)
    if not args:
        return False
    if literal_text(parsed, args[0]):
        return True
    return "file" in _options(parsed, args)
