"""ProjectFiles: skipped dirs, symlinks that escape, binary and huge files are recorded, never read."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import write_tree

from shipbench.audit.files import MAX_FILE_BYTES, ProjectFiles


def test_skips_vendor_node_modules_tmp_log_git(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "app/models/a.rb": "class A; end\n",
            "vendor/bundle/x.rb": "x",
            "node_modules/y/index.js": "y",
            "tmp/cache/z": "z",
            "log/development.log": "log",
            ".git/config": "[core]",
        },
    )
    files = ProjectFiles.scan(tmp_path)
    assert list(files.files) == ["app/models/a.rb"]


def test_symlink_outside_is_recorded_and_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("SECRET", encoding="utf-8")
    root = write_tree(tmp_path / "proj", {"README.md": "# hi\n"})
    os.symlink(outside, root / "leak.txt")
    os.symlink(tmp_path, root / "up")
    files = ProjectFiles.scan(root)
    assert "leak.txt" not in files.files
    statuses = {(i.path, i.status) for i in files.issues}
    assert ("leak.txt", "symlink_outside") in statuses
    assert ("up", "symlink_outside") in statuses


def test_symlink_inside_is_followed_for_files(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"config/real.rb": "X = 1\n"})
    os.symlink(root / "config/real.rb", root / "alias.rb")
    files = ProjectFiles.scan(root)
    assert files.get("alias.rb") is not None
    assert files.get("alias.rb").read_text() == "X = 1\n"  # type: ignore[union-attr]


def test_broken_symlink_is_unreadable(tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.rb")
    files = ProjectFiles.scan(tmp_path)
    assert [(i.path, i.status) for i in files.issues] == [("dangling.rb", "unreadable")]


def test_binary_and_huge_files_are_recorded(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "public/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00",
            "big.rb": "a = 1\n" * (MAX_FILE_BYTES // 6 + 10),
            "ok.rb": "a = 1\n",
        },
    )
    files = ProjectFiles.scan(tmp_path)
    assert list(files.files) == ["ok.rb"]
    assert {(i.path, i.status) for i in files.issues} == {
        ("public/logo.png", "binary"),
        ("big.rb", "too_large"),
    }


def test_under_filters_by_prefix_and_suffix(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app/a.rb": "", "app/b.erb": "", "apple/c.rb": "", "lib/d.rb": ""})
    files = ProjectFiles.scan(tmp_path)
    assert [f.rel for f in files.under("app", ".rb")] == ["app/a.rb"]
    assert [f.rel for f in files.under("", ".rb")] == ["app/a.rb", "apple/c.rb", "lib/d.rb"]
