"""tree-sitter parsing of Ruby, ERB (Ruby embedded in templates) and JavaScript.

Invariants: parsing never raises on bad input; a tree with syntax errors is returned with
`has_error` set so callers can record the file as unparsable and carry on. For ERB, the Ruby tree
is built over the template's own byte offsets, so node lines are the template's lines.
Lines reported by helpers here are 1-based.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import tree_sitter as ts
import tree_sitter_embedded_template as ts_erb
import tree_sitter_javascript as ts_js
import tree_sitter_ruby as ts_ruby

Node = ts.Node


@cache
def ruby_language() -> ts.Language:
    return ts.Language(ts_ruby.language())


@cache
def erb_language() -> ts.Language:
    return ts.Language(ts_erb.language())


@cache
def js_language() -> ts.Language:
    return ts.Language(ts_js.language())


@dataclass(frozen=True)
class ParsedSource:
    """A parsed file: its bytes, its tree, and where it came from."""

    rel: str
    source: bytes
    tree: ts.Tree
    kind: str  # "ruby" | "erb" | "js"

    @property
    def root(self) -> Node:
        return self.tree.root_node

    @property
    def has_error(self) -> bool:
        return self.tree.root_node.has_error

    def text(self, node: Node) -> str:
        return self.source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")

    def line_text(self, line: int) -> str:
        """The stripped text of 1-based `line`, clipped for evidence snippets."""
        lines = self.source.split(b"\n")
        if 1 <= line <= len(lines):
            return lines[line - 1].decode("utf-8", errors="replace").strip()[:200]
        return ""

    def first_error_line(self) -> int:
        for node in walk(self.root):
            if node.type == "ERROR" or node.is_missing:
                return line_of(node)
        return 0


def parse_ruby(rel: str, source: bytes) -> ParsedSource:
    parser = ts.Parser(ruby_language())
    tree = parser.parse(source)
    if tree.root_node.has_error and b"&" in source:
        repaired = repair_anonymous_block_args(source)
        if repaired != source:
            retry = parser.parse(repaired)
            if not retry.root_node.has_error:
                tree = retry  # same byte offsets and lines: node text still reads the original bytes
    return ParsedSource(rel=rel, source=source, tree=tree, kind="ruby")


# An anonymous block argument followed by whitespace (`super(a,\n  &\n)`, `g x, &` at the end of a line)
# is valid Ruby 3.1+ that tree-sitter-ruby 0.23 rejects; `&)` it accepts.
_ANON_BLOCK_ARG = re.compile(rb"[ \t]&(?=[ \t]*(?:\)|\r?\n|#|$))")


def repair_anonymous_block_args(source: bytes) -> bytes:
    """Rewrite ` &` (an anonymous block argument) as `&_` where the grammar needs it: same length and
    lines, so positions in the repaired tree are the original's. Only after a `,` or `(`."""
    out = bytearray(source)
    for match in _ANON_BLOCK_ARG.finditer(source):
        before = source[: match.start()].rstrip()
        if before.endswith((b",", b"(")):
            out[match.start() : match.end()] = b"&_"
    return bytes(out)


def parse_js(rel: str, source: bytes) -> ParsedSource:
    parser = ts.Parser(js_language())
    return ParsedSource(rel=rel, source=source, tree=parser.parse(source), kind="js")


def parse_erb(rel: str, source: bytes) -> ParsedSource:
    """Parse the Ruby inside an ERB template; node positions are the template's own."""
    template = ts.Parser(erb_language()).parse(source)
    ranges = [n.range for n in walk(template.root_node) if n.type == "code"]
    parser = ts.Parser(ruby_language())
    if ranges:
        parser.included_ranges = ranges
        tree = parser.parse(source)
    else:
        tree = parser.parse(b"")
    return ParsedSource(rel=rel, source=source, tree=tree, kind="erb")


def erb_output_directives(source: bytes) -> list[tuple[str, int, str]]:
    """`(opener, line, code)` for each output tag: opener is '<%=' or '<%=='."""
    template = ts.Parser(erb_language()).parse(source)
    out: list[tuple[str, int, str]] = []
    for node in walk(template.root_node):
        if node.type != "output_directive":
            continue
        opener = node.children[0] if node.children else None
        opener_text = source[opener.start_byte : opener.end_byte].decode() if opener else "<%="
        code = next((c for c in node.children if c.type == "code"), None)
        code_text = source[code.start_byte : code.end_byte].decode("utf-8", "replace") if code else ""
        out.append((opener_text, line_of(node), code_text.strip()))
    return out


def walk(node: Node) -> Iterator[Node]:
    """Every node under `node` (itself included), in document order, without recursion."""
    cursor = node.walk()
    visited_children = False
    while True:
        if not visited_children:
            current = cursor.node
            assert current is not None
            yield current
            if cursor.goto_first_child():
                continue
        if cursor.goto_next_sibling():
            visited_children = False
        elif cursor.goto_parent():
            visited_children = True
        else:
            return


def line_of(node: Node) -> int:
    return node.start_point[0] + 1


def of_type(node: Node, *types: str) -> Iterator[Node]:
    """Named nodes of these types; keyword tokens that share a type name (`class`, `rescue`) are skipped."""
    return (n for n in walk(node) if n.type in types and n.is_named)


def enclosing(node: Node, *types: str) -> Node | None:
    parent = node.parent
    while parent is not None:
        if parent.type in types:
            return parent
        parent = parent.parent
    return None
