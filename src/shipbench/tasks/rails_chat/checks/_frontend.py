"""Front-end helpers shared by the rails-chat checks: inline <script>/<style> blocks of views, the
app's JavaScript (files and inline scripts) as parsed units, and JS call/sink recognisers.

Invariants: everything goes through `AuditContext.parsed` (no direct file reads); an inline script
is parsed over a copy of its template with everything outside the script body blanked (newlines
kept, ERB tags blanked), so node lines are the template's own lines; nothing here raises on bad input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from shipbench.audit.checks import AuditContext
from shipbench.audit.ruby.parse import Node, ParsedSource, of_type, parse_js
from shipbench.tasks.rails_chat.checks._js_output import HTML_PROPERTIES as HTML_SINK_PROPS
from shipbench.tasks.rails_chat.checks._js_output import html_sinks, js_callee

JS_DIRS = ("app/javascript", "app/assets/javascripts")
_BLOCK_RE = re.compile(rb"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.I | re.S)
_ERB_TAG_RE = re.compile(rb"<%.*?%>", re.S)
_TYPE_RE = re.compile(r"""\btype\s*=\s*["']?([^"'\s>]+)""", re.I)
_JS_TYPES = frozenset({"", "text/javascript", "application/javascript", "module", "text/ecmascript"})


@dataclass(frozen=True)
class InlineBlock:
    """One `<script>` or `<style>` element written inline in a view template."""

    rel: str
    tag: str  # "script" | "style" (lower case)
    attrs: str
    line: int  # 1-based line of the opening tag
    body_start: int  # byte offsets of the body inside the template
    body_end: int
    body: str

    @property
    def is_js(self) -> bool:
        """A script the browser runs as JavaScript (not importmap/JSON/templates)."""
        if self.tag != "script":
            return False
        match = _TYPE_RE.search(self.attrs)
        return (match.group(1).lower() if match else "") in _JS_TYPES

    @property
    def code_lines(self) -> int:
        """Non-blank lines of the body."""
        return sum(1 for line in self.body.splitlines() if line.strip())


def view_sources(ctx: AuditContext) -> list[ParsedSource]:
    """Parsed templates under app/views (layouts included)."""
    return ctx.erb_sources("app/views")


def inline_blocks(parsed: ParsedSource) -> list[InlineBlock]:
    source = parsed.source
    blocks: list[InlineBlock] = []
    for match in _BLOCK_RE.finditer(source):
        body = match.group(3)
        blocks.append(
            InlineBlock(
                rel=parsed.rel,
                tag=match.group(1).decode("ascii", "replace").lower(),
                attrs=match.group(2).decode("utf-8", "replace"),
                line=source.count(b"\n", 0, match.start()) + 1,
                body_start=match.start(3),
                body_end=match.end(3),
                body=body.decode("utf-8", "replace"),
            )
        )
    return blocks


def _blank(data: bytes) -> bytes:
    return re.sub(rb"[^\n]", b" ", data)


def inline_js_unit(parsed: ParsedSource) -> ParsedSource | None:
    """All inline JS scripts of one template as one JS tree with template lines; None if there are none."""
    scripts = [b for b in inline_blocks(parsed) if b.is_js and b.body.strip()]
    if not scripts:
        return None
    source = parsed.source
    out = bytearray(_blank(source))
    for block in scripts:
        body = source[block.body_start : block.body_end]
        body = _ERB_TAG_RE.sub(lambda m: _blank(m.group(0)), body)
        out[block.body_start : block.body_end] = body
    return parse_js(parsed.rel, bytes(out))


def js_units(ctx: AuditContext) -> list[ParsedSource]:
    """The app's JavaScript: files under app/javascript and app/assets/javascripts, then inline scripts."""
    units: list[ParsedSource] = []
    for prefix in JS_DIRS:
        units.extend(ctx.js_sources(prefix))
    units.extend(u for p in view_sources(ctx) if (u := inline_js_unit(p)) is not None)
    return units


# ---- JavaScript syntax recognisers


def js_calls(parsed: ParsedSource, *names: str) -> Iterator[Node]:
    wanted = set(names)
    for node in of_type(parsed.root, "call_expression"):
        if js_callee(parsed, node)[1] in wanted:
            yield node


def js_fetch_calls(parsed: ParsedSource) -> list[Node]:
    """`fetch(...)`, `window.fetch(...)`, `globalThis.fetch(...)`."""
    return [
        n
        for n in js_calls(parsed, "fetch")
        if js_callee(parsed, n)[0] in ("", "window", "globalThis", "self")
    ]


def _is_empty_string(parsed: ParsedSource, node: Node | None) -> bool:
    return node is not None and parsed.text(node).strip() in ('""', "''", "``")


def js_html_sinks(parsed: ParsedSource) -> list[Node]:
    """Where HTML text is written into the DOM: `x.innerHTML = / +=` (not clearing it with '') and
    `x.insertAdjacentHTML(...)`."""
    return [
        s.node
        for s in html_sinks(parsed)
        if s.label in HTML_SINK_PROPS | {"insertAdjacentHTML"}
        and not (s.label in HTML_SINK_PROPS and _is_empty_string(parsed, s.value))
    ]


def js_import_sources(parsed: ParsedSource) -> list[str]:
    """The module specifiers of every `import ... from "x"` statement."""
    found: list[str] = []
    for node in of_type(parsed.root, "import_statement"):
        src = node.child_by_field_name("source")
        if src is not None:
            found.append(parsed.text(src).strip("'\"`"))
    return found


def js_has_subclass(parsed: ParsedSource) -> bool:
    """Whether the file declares a class with an `extends` clause."""
    return any(True for _ in of_type(parsed.root, "class_heritage"))
