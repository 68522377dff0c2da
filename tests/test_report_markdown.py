"""Markdown leaderboard: structure, "≈" and "no clear winner", sections, hostile strings escaped."""

from __future__ import annotations

import re
from pathlib import Path

from tests.report_helpers import make_record, write_config, write_trial

from shipbench.report.build import build_report
from shipbench.report.markdown import cell, render_markdown

HOSTILE = "evil|model`rm -rf`<script>alert(1)</script>\x1b[31mRED\x1b[0m[link](http://x)\n# heading\x07"


def _table_rows(md: str, header: str) -> list[str]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _cells(line: str) -> list[str]:
    """Split a Markdown table row on unescaped pipes."""
    out, cur, i = [], "", 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            cur += line[i: i + 2]
            i += 2
            continue
        if line[i] == "|":
            out.append(cur)
            cur = ""
        else:
            cur += line[i]
        i += 1
    return [c.strip() for c in out[1:]]


def test_cell_escapes_and_clips() -> None:
    text = cell(HOSTILE)
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\\|" in text and "`" not in text.replace("\\`", "")
    assert "\\[link\\]" in text and "RED" in text and "[31m" not in text
    long = cell("x" * 10_000, limit=50)
    assert len(long) == 50 and long.endswith("…")


def test_ranked_table_marks_not_separable_neighbours(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_config(suite, "claude", "top", [90, 92, 91, 93, 89])
    write_config(suite, "codex", "mid-a", [70, 75, 65, 72, 68])
    write_config(suite, "opencode", "mid-b", [69, 74, 66, 71, 67])
    write_config(suite, "opencode", "single", [10])
    md = render_markdown(build_report(suite)[0])
    rows = _table_rows(md, "| Rank |")
    assert [_cells(r)[0] for r in rows] == ["1", "2 (2–3)", "≈3 (2–3)", "≈4"]
    assert [_cells(r)[1] for r in rows] == ["claude / top", "codex / mid-a", "opencode / mid-b", "opencode / single"]
    assert _cells(rows[0])[2].startswith("91.0 [") and _cells(rows[3])[2] == "10.0 (n=1, no interval)"
    assert "- No clear winner between codex / mid-a and opencode / mid-b (intervals overlap)." in md
    assert "- No clear winner between opencode / mid-b and opencode / single (too few runs for an interval)." in md
    assert "No clear winner between claude / top" not in md
    assert "### Score by dimension" in md and "## Method" in md
    assert all(len(_cells(r)) == 11 for r in rows)


def test_hostile_strings_cannot_break_tables(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_config(suite, "opencode", HOSTILE, [50, 60])
    write_trial(suite, make_record("codex", "m", 1, status="infra_error", failure_class="infra", reason=HOSTILE * 50))
    md = render_markdown(build_report(suite)[0])
    assert "<script>" not in md and "\x1b" not in md and "\x07" not in md and not re.search(r"(?<!\\)\]\(", md)
    ranked = _table_rows(md, "| Rank |")
    assert len(ranked) == 2 and all(len(_cells(r)) == 11 for r in ranked)  # + the infra-only config, unranked
    assert _cells(ranked[1])[:3] == ["–", "codex / m", "–"]
    infra = _table_rows(md, "| Trial | Configuration | Status | Reason |")
    assert len(infra) == 1 and len(_cells(infra[0])) == 4
    assert max(len(line) for line in md.splitlines()) < 1200
    assert not any(line.startswith("# heading") for line in md.splitlines())


def test_sections_views_infra_imported(tmp_path: Path) -> None:
    suite = tmp_path / "s"
    write_config(suite, "claude", "sonnet", [80, 82], cost=3.0)
    write_config(suite, "opencode", "sonnet", [60, 62], cost=1.0, delegations=2, subagents=("x",))
    write_trial(suite, make_record("codex", "m", 1, status="infra_error", failure_class="infra", reason="no network"))
    anchors = Path(__file__).resolve().parents[2] / "shared" / "reference" / "anchor-results"
    md = render_markdown(build_report(suite, [anchors] if anchors.is_dir() else [])[0])
    for heading in ("## Views", "### Harness effect", "### Cost vs score", "### Time vs score", "### Tier distribution",
                    "### Delegations to subagents", "## Infrastructure failures (reported apart, not scored)"):
        assert heading in md, heading
    assert "no network" in md
    if anchors.is_dir():
        assert "## Imported history (reference harness: unaudited, not scored, not ranked)" in md
        assert "(unreliable)" in md and "last step only" in md
