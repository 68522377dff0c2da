"""ProjectFiles: skipped dirs, symlinks that escape, binary, huge and non-regular files are recorded,
never read; undecodable names are escaped; the walk is bounded by the file budget."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import write_tree

from shipbench.audit.files import MAX_FILE_BYTES, ProjectFiles, display_path


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


def test_display_path_escapes_only_undecodable_bytes(tmp_path: Path) -> None:
    assert display_path("app/models/café.rb") == "app/models/café.rb"
    assert display_path(os.fsdecode(b"app/\xff\xfe.rb")) == "app/\\xff\\xfe.rb"
    fd = os.open(os.fsencode(tmp_path) + b"/\xffx.rb", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"X = 1\n")
    os.close(fd)
    files = ProjectFiles.scan(tmp_path)
    assert list(files.files) == ["\\xffx.rb"]
    assert files.files["\\xffx.rb"].read_text() == "X = 1\n"  # the real file behind the escaped name


def test_fifo_is_recorded_not_opened(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app/a.rb": "A = 1\n"})
    os.mkfifo(tmp_path / "app" / "b.rb")  # opening it for reading would block forever
    files = ProjectFiles.scan(tmp_path)
    assert list(files.files) == ["app/a.rb"]
    assert [(i.path, i.status, i.detail) for i in files.issues] == [
        ("app/b.rb", "not_regular", "not a regular file: FIFO (named pipe)")
    ]
    assert files.seen == 2


def test_budget_counts_file_entries_and_sets_truncated(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i}.txt": "x" for i in range(5)})
    exact = ProjectFiles.scan(tmp_path, max_files=5)
    assert (exact.truncated, exact.seen) == (False, 5)
    cut = ProjectFiles.scan(tmp_path, max_files=3)
    assert (cut.truncated, cut.seen, list(cut.files)) == (True, 3, ["f0.txt", "f1.txt", "f2.txt"])
