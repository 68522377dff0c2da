"""Which model slugs a project asks for: `model:` pairs and parameters, `with_model(...)`, `*model* =`
assignments, constants they name, ENV defaults, and `*MODEL*=` lines of env/compose/YAML files.

Invariants: only literal strings are reported (a slug read from ENV without a default is unknown,
never guessed); constants resolve within the project, depth-limited; every slug has a place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, line_of, of_type
from shipbench.tasks.rails_chat.checks._common import app_ruby, method_name

MODEL_NAME = re.compile(r"^@{0,2}([a-z0-9_]*_)?model(_id|_name|_slug)?$", re.IGNORECASE)
ENV_LINE = re.compile(
    r"""^\s*-?\s*["']?(\w*MODEL\w*)["']?\s*[:=]\s*["']?([\w.:/@-]+)["']?\s*$""", re.IGNORECASE
)
TEXT_CONFIG = re.compile(r"(^|/)(\.env[\w.-]*|[\w.-]*compose[\w.-]*\.ya?ml|config/[\w/.-]+\.ya?ml)$")
SLUG_SHAPE = re.compile(r"[a-z][\w.]*[-/][\w.]", re.IGNORECASE)
MAX_DEPTH = 4


@dataclass(frozen=True)
class Slug:
    value: str
    path: str
    line: int
    snippet: str


def string_value(parsed: ParsedSource, node: Node | None) -> str | None:
    """The value of a plain string literal (no interpolation), else None."""
    if node is None or node.type != "string":
        return None
    if any(c.type == "interpolation" for c in node.named_children):
        return None
    return "".join(parsed.text(c) for c in node.named_children if c.type == "string_content")


class _Resolver:
    """Turns a value expression into the literal slug it stands for, if the project says."""

    def __init__(self, sources: list[ParsedSource]) -> None:
        self.constants: dict[str, tuple[ParsedSource, Node]] = {}
        for parsed in sources:
            for node in of_type(parsed.root, "assignment"):
                left = node.child_by_field_name("left")
                right = node.child_by_field_name("right")
                if left is not None and right is not None and left.type == "constant":
                    self.constants.setdefault(parsed.text(left), (parsed, right))

    def resolve(self, parsed: ParsedSource, node: Node | None, depth: int = 0) -> str | None:
        if node is None or depth > MAX_DEPTH:
            return None
        literal = string_value(parsed, node)
        if literal is not None:
            return literal
        if node.type in ("constant", "scope_resolution"):
            name = parsed.text(node).rsplit("::", 1)[-1]
            found = self.constants.get(name)
            return self.resolve(found[0], found[1], depth + 1) if found else None
        if node.type == "binary" and parsed.text(node.child_by_field_name("operator") or node) in (
            "||",
            "or",
        ):
            return self.resolve(parsed, node.child_by_field_name("right"), depth + 1)
        if node.type == "call":
            return self._env_default(parsed, node, depth)
        return None

    def _env_default(self, parsed: ParsedSource, call: Node, depth: int) -> str | None:
        """`ENV.fetch("X", "default")` and `ENV.fetch("X") { "default" }`."""
        if method_name(parsed, call) != "fetch":
            return None
        args = call.child_by_field_name("arguments")
        named = [c for c in args.named_children] if args is not None else []
        if len(named) >= 2:
            return self.resolve(parsed, named[1], depth + 1)
        block = call.child_by_field_name("block")
        body = block.child_by_field_name("body") if block is not None else None
        if body is not None and body.named_children:
            return self.resolve(parsed, body.named_children[-1], depth + 1)
        return None


def _value_nodes(parsed: ParsedSource) -> list[Node]:
    """Expressions that name a model: values of `model:` pairs/params, `with_model` args, `*model* =`."""
    found: list[Node] = []
    for node in of_type(parsed.root, "pair", "keyword_parameter", "optional_parameter"):
        key = node.child_by_field_name("key") or node.child_by_field_name("name")
        value = node.child_by_field_name("value")
        if key is not None and value is not None and parsed.text(key).strip("\"':") == "model":
            found.append(value)
    for node in of_type(parsed.root, "call"):
        if method_name(parsed, node) == "with_model":
            args = node.child_by_field_name("arguments")
            if args is not None and args.named_children:
                found.append(args.named_children[0])
    for node in of_type(parsed.root, "assignment", "operator_assignment"):
        left = node.child_by_field_name("left")
        right = node.child_by_field_name("right")
        if left is None or right is None:
            continue
        name = method_name(parsed, left) if left.type == "call" else parsed.text(left)
        if MODEL_NAME.match(name):
            found.append(right)
    return found


def ruby_slugs(ctx: AuditContext) -> list[Slug]:
    sources = app_ruby(ctx)
    resolver = _Resolver(sources)
    slugs: list[Slug] = []
    for parsed in sources:
        for node in _value_nodes(parsed):
            value = resolver.resolve(parsed, node)
            if value:
                line = line_of(node)
                slugs.append(Slug(value, parsed.rel, line, parsed.line_text(line)))
    return slugs


def config_slugs(ctx: AuditContext) -> list[Slug]:
    """`OPENROUTER_MODEL=...` / `model: ...` lines in .env*, compose and config YAML files."""
    slugs: list[Slug] = []
    for source in ctx.app_files():
        rel_in_app = source.rel[len(ctx.app_prefix) :]
        if not TEXT_CONFIG.search(rel_in_app):
            continue
        try:
            lines = source.read_text().splitlines()
        except OSError:
            continue
        for i, text in enumerate(lines, 1):
            m = ENV_LINE.match(text)
            if m and MODEL_NAME.match(m.group(1)) and SLUG_SHAPE.search(m.group(2)):
                slugs.append(Slug(m.group(2), source.rel, i, text.strip()[:200]))
    return slugs


def project_slugs(ctx: AuditContext) -> list[Slug]:
    return ruby_slugs(ctx) + config_slugs(ctx)


def is_accepted(slug: str, accepted: list[str]) -> bool:
    """Exact match, or an OpenRouter variant (`slug:beta`) of an accepted slug."""
    return slug in accepted or slug.split(":", 1)[0] in accepted
