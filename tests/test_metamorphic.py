"""Metamorphic tests: renaming the app's own classes (test doubles included), methods, instance and
local variables and test names (consistently, in every file) and moving service/model files must not
change the audit's verdict.

The verdict is the score, the tier, the set of rules that fired and the severity classes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from tests.conftest import FIXTURES

from shipbench.audit.engine import audit_project
from shipbench.audit.models import AuditResult

GEMS = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "gems"
PROJECTS = [
    FIXTURES / "calibration" / "tuned" / "gpt_5_4",
    FIXTURES / "calibration" / "tuned" / "sonnet_4_6",
    FIXTURES / "calibration" / "tuned" / "qwen_3_5_122b",
    FIXTURES / "rails_chat" / "hallucinated_client",
    FIXTURES / "rails_chat" / "invented_fluent_dsl",
    FIXTURES / "failure_classes" / "store_passed_in" / "cache_inherited_fat_model",
    FIXTURES / "failure_classes" / "injected_builder" / "controller_passes_lambda",
    FIXTURES / "failure_classes" / "helper_escaped_innerhtml" / "stimulus_escape_function",
]
TEXT_SUFFIXES = (".rb", ".erb", ".js", ".rake", ".ru")
CLASS_DEF = re.compile(r"^\s*(?:class|module)\s+([A-Z]\w*)", re.M)
IVAR = re.compile(r"@([a-z_]\w*)")
MOVABLE = ("app/services", "app/models", "lib")
TEST_DIRS = ("test", "spec")
METHOD_DEF = re.compile(r"^\s*def\s+(?:self\.)?([a-z_]\w*[?!]?)", re.M)
TEST_TITLE = re.compile(r"""^(\s*(?:test|it|specify)\s*\(?\s*)(["'])(.*?)\2""", re.M)
TEST_DEF = re.compile(r"^(\s*def\s+)test_\w+", re.M)
# methods whose names belong to Ruby, Rails or the gem's protocol (a double must keep them to stand in)
KEPT_METHODS = frozenset(
    """
    initialize call to_s to_h to_a to_json as_json inspect each perform method_missing respond_to_missing?
    setup teardown before after
    clear add delete push pop shift unshift append fetch store update merge find first last size count
    empty? include? key? keys values map select reject all any? none? save create destroy new build reset
    read write exist? present? blank? join sort min max sum
    """.split()  # noqa: SIM905
)  # Ruby core collection/Rails persistence names: a regex rename cannot tell `store.clear` from `Array#clear`


def _verdict(result: AuditResult) -> tuple[int, str, list[str], object]:
    return result.score, result.tier, sorted({f.rule for f in result.findings}), result.facts.get("severity")


def _audit(project: Path) -> AuditResult:
    return audit_project(project, "rails-chat", {"ruby_llm": GEMS / "ruby_llm-1.14.1"})


def _app_classes(root: Path) -> set[str]:
    names: set[str] = set()
    for path in root.rglob("*.rb"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(MOVABLE + TEST_DIRS):
            names.update(CLASS_DEF.findall(path.read_text(encoding="utf-8")))
    return names - {"ApplicationRecord", "ApplicationController", "Application", "RubyLLM"}


def _gem_method_names() -> set[str]:
    source = GEMS / "ruby_llm-1.14.1" / "lib"
    return {m for path in source.rglob("*.rb") for m in METHOD_DEF.findall(path.read_text(encoding="utf-8"))}


def _app_methods(root: Path) -> set[str]:
    """Methods the app's services/models/lib and the tests' helpers define, minus Ruby/Rails/gem protocol."""
    names: set[str] = set()
    for path in root.rglob("*.rb"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(MOVABLE + TEST_DIRS):
            names.update(METHOD_DEF.findall(path.read_text(encoding="utf-8")))
    return {n for n in names - KEPT_METHODS - _gem_method_names() if not n.startswith("test_")}


def _rename_methods(root: Path, names: set[str]) -> None:
    alternatives = "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
    pattern = re.compile(r"(?<![\w@$])(" + alternatives + r")(?![\w?!])")
    for path in root.rglob("*"):
        if path.is_file() and path.name.endswith(TEXT_SUFFIXES):
            text = path.read_text(encoding="utf-8")
            path.write_text(pattern.sub(lambda m: _renamed_method(m.group(1)), text), encoding="utf-8")


def _renamed_method(name: str) -> str:
    suffix = name[-1] if name[-1] in "?!" else ""
    return "zq_" + name.rstrip("?!")[::-1] + suffix


def _rename_locals(root: Path) -> None:
    """Rename every local variable assigned inside a method of app/ Ruby (not parameters: callers may
    pass them by keyword), within that method only, through the syntax tree."""
    from shipbench.audit.ruby.parse import of_type, parse_ruby

    for path in sorted((root / "app").rglob("*.rb")):
        source = path.read_bytes()
        parsed = parse_ruby("x.rb", source)
        edits: list[tuple[int, int, bytes]] = []
        for method in of_type(parsed.root, "method", "singleton_method"):
            assigned = {
                parsed.text(left)
                for a in of_type(method, "assignment", "operator_assignment")
                if (left := a.child_by_field_name("left")) is not None and left.type == "identifier"
            }
            for ident in of_type(method, "identifier"):
                parent = ident.parent
                is_method_name = parent is not None and parent.child_by_field_name("method") == ident
                if parsed.text(ident) in assigned and not is_method_name:
                    edits.append((ident.start_byte, ident.end_byte, b"lv_" + parsed.text(ident)[::-1].encode()))
        for start, end, new in sorted(set(edits), reverse=True):
            source = source[:start] + new + source[end:]
        path.write_bytes(source)


def _rename_tests(root: Path) -> None:
    """Give every test a neutral title: what a test checks must come from its code, not its name."""
    for folder in TEST_DIRS:
        for path in (root / folder).rglob("*.rb") if (root / folder).is_dir() else []:
            path.write_text(_neutral_titles(path.read_text(encoding="utf-8")), encoding="utf-8")


def _neutral_titles(text: str) -> str:
    counter = iter(range(1, 10_000))
    text = TEST_TITLE.sub(lambda m: f"{m.group(1)}{m.group(2)}case {next(counter)}{m.group(2)}", text)
    return TEST_DEF.sub(lambda m: f"{m.group(1)}test_case_{next(counter)}", text)


def _rewrite(root: Path, mapping: dict[str, str], ivars: bool) -> None:
    # a library's own constants that share a name (RubyLLM::Error, Faraday::Error) are not the app's to rename
    alternatives = "|".join(map(re.escape, sorted(mapping, key=len, reverse=True)))
    pattern = re.compile(r"(?<!RubyLLM::)(?<!Faraday::)\b(" + alternatives + r")\b")
    for path in root.rglob("*"):
        if not path.is_file() or not path.name.endswith(TEXT_SUFFIXES):
            continue
        text = path.read_text(encoding="utf-8")
        if mapping:
            text = pattern.sub(lambda m: mapping[m.group(1)], text)
        if ivars:
            text = IVAR.sub(lambda m: f"@v{len(m.group(1))}_{m.group(1)[::-1]}", text)
        path.write_text(text, encoding="utf-8")


def _move_files(root: Path) -> None:
    """Move service/model files into another folder under a new name (the auditor must not care)."""
    for folder in MOVABLE:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.rb")):
            target = root / "app" / "domain" / f"moved_{path.stem}_{len(path.parts)}.rb"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)


@pytest.mark.skipif(not GEMS.is_dir(), reason="needs ../shared/reference/gems beside the checkout")
@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
@pytest.mark.parametrize(
    "change", ["rename-classes", "rename-ivars", "rename-methods", "rename-locals", "rename-tests", "move-files"]
)
def test_renaming_and_moving_code_keeps_the_verdict(tmp_path: Path, project: Path, change: str) -> None:
    if not project.is_dir():
        pytest.skip(f"{project.name} not in this checkout")
    copy = tmp_path / project.name
    shutil.copytree(project, copy)
    if change == "rename-classes":
        classes = _app_classes(copy)
        assert classes, "the project defines classes of its own"
        _rewrite(copy, {c: f"Qx{c[::-1].capitalize()}" for c in classes}, ivars=False)
    elif change == "rename-ivars":
        _rewrite(copy, {}, ivars=True)
    elif change == "rename-methods":
        methods = _app_methods(copy)
        assert methods, "the project defines methods of its own"
        _rename_methods(copy, methods)
    elif change == "rename-locals":
        _rename_locals(copy)
    elif change == "rename-tests":
        _rename_tests(copy)
    else:
        _move_files(copy)
    assert _verdict(_audit(copy)) == _verdict(_audit(project))
