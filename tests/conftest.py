"""Shared test helpers: build small projects on disk and audit contexts over them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shipbench.audit.checks import AuditContext
from shipbench.audit.facts import extract_facts
from shipbench.audit.files import ProjectFiles
from shipbench.tasks import load_task

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
RUBY_LLM_GEM = FIXTURES / "gems" / "ruby_llm-1.14.1"  # hand-written mirror: construct unit tests
# The real gem sources (MIT) beside the checkout: ../shared/reference/gems/ruby_llm-<version>. Tests that
# verify API calls use these; they skip, saying why, where the folder is absent.
REAL_GEMS = REPO.parent / "shared" / "reference" / "gems"
REAL_RUBY_LLM = REAL_GEMS / "ruby_llm-1.14.1"
REAL_RUBY_LLM_116 = REAL_GEMS / "ruby_llm-1.16.0"


def need_real_gem(*paths: Path) -> None:
    """Skip the calling test when a real gem source is not beside the checkout."""
    for path in paths or (REAL_RUBY_LLM,):
        if not (path / "lib").is_dir():
            pytest.skip(f"real gem source not found at {path} (expected ../shared/reference/gems beside the checkout)")


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def make_context(root: Path) -> AuditContext:
    files = ProjectFiles.scan(root)
    return AuditContext(
        project_root=root.resolve(), files=files, task=load_task("rails-chat"), facts=extract_facts(files)
    )


@pytest.fixture
def project(tmp_path: Path) -> Callable[[dict[str, str | bytes]], Path]:
    def build(files: dict[str, str | bytes]) -> Path:
        return write_tree(tmp_path / "proj", files)

    return build
