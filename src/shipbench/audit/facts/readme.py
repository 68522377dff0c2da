"""README facts: which file, whether it is the stock `rails new` template, whether it says how to set up.

Rules (exact):
- stock: the text carries the template's signature (its opening sentence "This README would normally
  document whatever steps are necessary to get the application up and running", or at least 5 of its
  9 stock bullets as bare bullet lines) AND the words outside template lines and headings are no more
  than the template words present (a changed title or a line or two added is still stock).
- setup instructions: a shell command (first word one of SETUP_COMMANDS, an optional `$ ` prompt
  allowed) inside a fenced block, an indented block or an inline code span; OR a mention of an
  `*_API_KEY` environment variable (OPENROUTER_API_KEY in this task).
Invariants: matching is case-insensitive and whitespace-normalised; nothing here raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipbench.audit.files import ProjectFiles

README_NAMES = ("readme.md", "readme", "readme.markdown", "readme.rdoc", "readme.txt", "readme.rst")
TEMPLATE_SENTENCE = (
    "this readme would normally document whatever steps are necessary to get the application up and running"
)
TEMPLATE_LINES = (
    TEMPLATE_SENTENCE,
    "things you may want to cover",
)
TEMPLATE_BULLETS = (
    "ruby version",
    "system dependencies",
    "configuration",
    "database creation",
    "database initialization",
    "how to run the test suite",
    "services (job queues, cache servers, search engines, etc.)",
    "deployment instructions",
    "...",
)
MIN_STOCK_BULLETS = 5
SETUP_COMMANDS = frozenset(
    {
        "bundle",
        "bin/rails",
        "rails",
        "bin/dev",
        "bin/setup",
        "./bin/rails",
        "./bin/dev",
        "./bin/setup",
        "docker",
        "docker-compose",
        "podman",
        "mise",
        "rbenv",
        "asdf",
        "gem",
        "git",
        "cp",
        "export",
        "yarn",
        "npm",
        "ruby",
        "make",
        "foreman",
        "overmind",
        "rake",
        "bin/rake",
    }
)
_API_KEY_RE = re.compile(r"\b[A-Z][A-Z0-9_]*_API_KEY\b")
_FENCE_RE = re.compile(r"^\s{0,3}(```|~~~)")
_INLINE_CODE_RE = re.compile(r"`([^`\n]+)`")
_BULLET_RE = re.compile(r"^\s*[*+-]\s+")


@dataclass(frozen=True)
class ReadmeFacts:
    path: str | None = None
    stock_template: bool = False
    setup_instructions: bool = False


def find_readme(files: ProjectFiles, roots: list[str]) -> str | None:
    for root in roots:
        prefix = f"{root}/" if root else ""
        by_name = {
            rel[len(prefix) :].lower(): rel
            for rel in files.files
            if rel.startswith(prefix) and "/" not in rel[len(prefix) :]
        }
        for name in README_NAMES:
            if name in by_name:
                return by_name[name]
    return None


def readme_facts(files: ProjectFiles, roots: list[str]) -> ReadmeFacts:
    path = find_readme(files, roots)
    if path is None:
        return ReadmeFacts()
    source = files.get(path)
    try:
        text = source.read_text() if source is not None else ""
    except OSError:
        text = ""
    return ReadmeFacts(path=path, stock_template=is_stock_template(text), setup_instructions=has_setup(text))


def _norm(line: str) -> str:
    line = _BULLET_RE.sub("", line)
    line = re.sub(r"[#*_>`]", " ", line)
    return " ".join(line.lower().split()).rstrip(":.")


def is_stock_template(text: str) -> bool:
    normalised = " ".join(_norm(line) for line in text.splitlines())
    bullets = {_norm(line) for line in text.splitlines() if _BULLET_RE.match(line)}
    stock_bullets = sum(1 for b in TEMPLATE_BULLETS if b.rstrip(".") in bullets or b in bullets)
    if TEMPLATE_SENTENCE not in normalised and stock_bullets < MIN_STOCK_BULLETS:
        return False
    template_words = other_words = 0
    for line in _join_paragraph_lines(text):
        words = len(_norm(line).split())
        if _is_template_line(line):
            template_words += words
        elif not line.lstrip().startswith("#"):
            other_words += words
    return other_words <= template_words


def _join_paragraph_lines(text: str) -> list[str]:
    """Lines with soft-wrapped paragraph lines joined (the template wraps its first sentence)."""
    out: list[str] = []
    for line in text.splitlines():
        starts_block = not line.strip() or line.lstrip().startswith(("#", "*", "-", "+", "`", "~"))
        if out and out[-1].strip() and not starts_block and not out[-1].lstrip().startswith("#"):
            out[-1] = out[-1].rstrip() + " " + line.strip()
        else:
            out.append(line)
    return out


def _is_template_line(line: str) -> bool:
    norm = _norm(line)
    if not norm:
        return False
    return norm in TEMPLATE_LINES or norm in TEMPLATE_BULLETS or norm == "readme"


def has_setup(text: str) -> bool:
    if _API_KEY_RE.search(text):
        return True
    return any(_is_command(snippet) for snippet in _code_snippets(text))


def _is_command(snippet: str) -> bool:
    words = snippet.strip().removeprefix("$").split()
    return bool(words) and words[0] in SETUP_COMMANDS


def _code_snippets(text: str) -> list[str]:
    """Lines of fenced blocks, indented blocks (after a blank line), and inline code spans."""
    snippets: list[str] = []
    in_fence = False
    previous_blank = True
    in_indented = False
    for line in text.splitlines():
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            snippets.append(line)
            continue
        indented = line.startswith(("    ", "\t")) and bool(line.strip())
        in_indented = indented and (in_indented or previous_blank)
        if in_indented:
            snippets.append(line)
        snippets.extend(_INLINE_CODE_RE.findall(line))
        previous_blank = not line.strip()
    return snippets
