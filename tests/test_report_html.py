"""HTML report without a browser: text hygiene helpers, SVG validity, page files, CSP hashes, escaping on disk."""

from __future__ import annotations

import base64
import hashlib
import html as htmllib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tests.test_report_html_data import HUGE, IMG, SCRIPT, board_and_trials, hostile_id

from shipbench.report import svg
from shipbench.report.html import assets, render_html, trial_href
from shipbench.report.html_tables import generic_table
from shipbench.report.html_text import clean, page_name, strip_ansi, workspace_href
from shipbench.report.load import SkippedTrial

NS = "{http://www.w3.org/2000/svg}"


# --- text helpers ---------------------------------------------------------------------------------------------

def test_strip_ansi_removes_escapes_controls_and_bidi() -> None:
    raw = "\x1b[1;31mred\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x07 \x9b2Kx\x00y\x07 a\u202eb\r\nnext\rline"
    out = strip_ansi(raw)
    assert out == "red link xy ab\nnext\nline"
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", out)


def test_clean_clips_long_lines_and_line_count() -> None:
    out = clean("short\n" + "x" * 1000, max_line=50)
    first, second = out.split("\n")
    assert first == "short"
    assert second.startswith("x" * 50) and second.endswith("[clipped 950 chars]")
    many = clean("\n".join(str(i) for i in range(100)), max_lines=10)
    assert many.count("\n") == 10 and many.endswith("[clipped 90 more lines]")
    assert clean(None) == ""
    assert clean(SCRIPT) == SCRIPT  # escaping is the template's job, not clean's


def test_page_name_is_safe_and_unique() -> None:
    assert page_name("rails-chat__codex__gpt-5__r1") == "rails-chat__codex__gpt-5__r1.html"
    hostile = page_name("../../etc/<script>x</script>")
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.html", hostile) and not hostile.startswith(".")
    assert page_name("a/b") != page_name("a?b")  # both sanitise to "a-b": the hash keeps them apart
    assert page_name("") .endswith(".html") and len(page_name("y" * 5000)) < 130


def test_workspace_href_stays_inside_and_encodes(tmp_path: Path) -> None:
    ws = tmp_path / "trial" / "workspace"
    (ws / SCRIPT).parent.mkdir(parents=True)
    (ws / SCRIPT).write_text("x")
    (tmp_path / "secret.txt").write_text("s")
    page_dir = tmp_path / "report" / "trials"
    page_dir.mkdir(parents=True)
    href = workspace_href(ws, SCRIPT, page_dir, 3)
    assert href is not None and href.endswith("#L3")
    assert "<" not in href and ">" not in href and ":" not in href
    assert (page_dir / re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m[1], 16)), href.split("#")[0])).resolve() == (
        (ws / SCRIPT).resolve())
    assert workspace_href(ws, "../../secret.txt", page_dir) is None
    assert workspace_href(ws, str(tmp_path / "secret.txt"), page_dir) is None
    assert workspace_href(ws, "missing.rb", page_dir) is None
    assert workspace_href(None, "a.rb", page_dir) is None


def test_generic_table_detects_numeric_columns() -> None:
    rows = [SkippedTrial(path="b", reason="z"), SkippedTrial(path="a", reason="y")]
    table = generic_table("t", rows)
    assert [c.name for c in table.columns] == ["path", "reason"] and not any(c.num for c in table.columns)
    assert generic_table("e", [], empty="none").rows == []


# --- svg ------------------------------------------------------------------------------------------------------

def _parse(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    assert root.tag == f"{NS}svg"
    for el in root.iter():
        assert "style" not in el.attrib and not any(k.startswith("on") for k in el.attrib)
        assert el.tag not in {f"{NS}script", f"{NS}foreignObject", f"{NS}image", f"{NS}a"}
    return root


def test_svg_charts_are_valid_xml_with_escaped_labels() -> None:
    pts = [svg.Point(SCRIPT, 0.5, 80, "a&b"), svg.Point("cheap", 0.2, 60, "c"), svg.Point("dominated", 0.6, 50)]
    charts = [
        svg.scatter(pts, "cost vs score", "cost", "score", front=True),
        svg.intervals([svg.Interval(IMG, 70, 60, 80), svg.Interval("single", 50)]),
        svg.tier_bars([svg.TierCounts(SCRIPT, {"A": 2, "C": 1}), svg.TierCounts("none", {})]),
        svg.timeline([svg.Span("1. build", 0, 120), svg.Span("2. fix", 120, 130, "timeout")]),
    ]
    for markup in charts:
        root = _parse(markup)
        assert "<script" not in markup and "<img" not in markup
        assert root.get("viewBox")
    titles = [t.text or "" for t in ET.fromstring(charts[0]).iter(f"{NS}title")]
    assert any(t.startswith(SCRIPT + ":") for t in titles)  # survives as text, escaped in the markup
    front = ET.fromstring(charts[0]).find(f"{NS}polyline")
    assert front is not None and len(front.get("points", "").split()) == 2  # cheap + the SCRIPT point
    assert len(ET.fromstring(charts[2]).findall(f"{NS}rect[@class='tier']")) == 2  # empty row dropped
    assert "single run: no interval" in charts[1]


def test_scatter_labels_only_the_front_when_crowded() -> None:
    pts = [svg.Point(f"c{i}", 1.0 + i % 5, 50.0 + i, f"g{i % 10}") for i in range(20)]
    root = _parse(svg.scatter(pts, "t", "cost", "score", front=True))
    labels = {t.text for t in root.findall(f"{NS}g[@class='points']/{NS}text")}
    assert labels == {p.label for p in svg.pareto_front(pts)} and 0 < len(labels) < 20
    assert len(root.findall(f".//{NS}circle/{NS}title")) == 20  # every point keeps its hover title
    assert any("+2 more" in (t.text or "") for t in root.iter(f"{NS}text"))


def test_svg_empty_inputs_render_no_data() -> None:
    for markup in (svg.scatter([], "t", "x", "y"), svg.intervals([]), svg.tier_bars([]), svg.timeline([])):
        assert "no data" in markup
        _parse(markup)


def test_pareto_front_and_ticks() -> None:
    pts = [svg.Point("a", 1, 50), svg.Point("b", 2, 70), svg.Point("c", 3, 60), svg.Point("d", 0.5, 40)]
    assert [p.label for p in svg.pareto_front(pts)] == ["d", "a", "b"]
    assert svg.nice_ticks(87) == [0, 20, 40, 60, 80, 100]
    ticks = svg.nice_range(0.57, 0.72)
    assert ticks[0] <= 0.57 and ticks[-1] >= 0.72 and len(ticks) <= 8


# --- rendered pages -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("html")
    board, trials = board_and_trials(root / "results")
    return render_html(board, trials, root / "report")


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_render_writes_index_and_one_page_per_trial(report: Path) -> None:
    assert report.name == "index.html"
    pages = sorted(p.name for p in (report.parent / "trials").iterdir())
    assert len(pages) == 9 and page_name(hostile_id()) in pages
    index = report.read_text()
    for name in pages:
        assert f'href="trials/{name}"' in index
    assert trial_href("a/b").startswith("trials/") and "/" not in trial_href("a/b")[7:]


def test_csp_allows_exactly_the_inline_assets(report: Path) -> None:
    css, js, csp = assets()
    for page in [report, *(report.parent / "trials").iterdir()]:
        html = page.read_text()
        meta = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
        assert meta is not None and htmllib.unescape(meta[1]) == csp
        assert "default-src 'none'" in csp and f"script-src '{_sha(js)}'" in csp and f"style-src '{_sha(css)}'" in csp
        scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
        assert scripts == [js], page.name
        assert re.findall(r"<style>(.*?)</style>", html, re.S) == [css]
        assert not re.search(r"\son[a-z]+=", html.replace(IMG.replace("<", "&lt;").replace(">", "&gt;"), ""))
        assert " style=" not in html
        assert set(re.findall(r"https?://[^\s\"'<>]*", html)) <= {"http://www.w3.org/2000/svg"}


def test_hostile_strings_are_escaped_and_clipped_on_disk(report: Path) -> None:
    page = (report.parent / "trials" / page_name(hostile_id())).read_text()
    assert "<script>window.__pwned" not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=window.__pwned=2&gt;" in page
    assert "\x1b" not in page and "\x07" not in page
    assert HUGE not in page and "[clipped " in page
    assert len(page) < 120_000
    index = report.read_text()
    assert "<script>window.__pwned" not in index


def test_trial_page_shows_every_section(report: Path) -> None:
    page = (report.parent / "trials" / "rails-chat__opencode__glm-4.6__r1.html").read_text()
    for needle in ("persistence.class_variable", "Chat#complete_now", "verdict-missing", "ruby_llm 1.14.1",
                   "opencode 1.2.3", "no events for 30 s", "Built the chat app; all tests pass.",
                   "test/chat_test.rb", "1. build", "Delegations to subagents", 'id="phases"', 'id="api"'):
        assert needle in page, needle
    # evidence links point into the trial's workspace and the target exists
    href = re.search(r'<a href="([^"]*chat_store\.rb)#L3">', page)
    assert href is not None
    assert (report.parent / "trials" / href[1]).resolve().is_file()
    assert _parse(re.search(r"<svg.*?</svg>", page, re.S)[0])  # type: ignore[index]


def test_index_has_charts_marks_and_sections(report: Path) -> None:
    index = report.read_text()
    charts = re.findall(r"<svg.*?</svg>", index, re.S)
    assert len(charts) == 4
    for chart in charts:
        _parse(chart)
    assert "No clear winner between" in index and "≈" in index
    assert "Infrastructure failures" in index and "rails-chat__codex__gpt-5__r4" in index
    assert 'data-v="80.66' in index  # opencode mean score as the numeric sort key


def test_row_without_record_or_audit_renders(tmp_path: Path) -> None:
    from shipbench.report.html import render_trial
    from shipbench.report.load import TrialRow

    row = TrialRow(trial_id="imported__x", suite="reference-harness", task="rails-chat", agent="opencode",
                   model_id=f"m {SCRIPT}", model="m", provider="unknown", repeat=1, config_key="opencode / m",
                   status="completed", imported=True, cost_usd=None, tokens_reliable=False, notes=[f"v1 {IMG}"])
    page = render_trial(row, tmp_path).read_text()
    assert "imported" in page and "No audit for this trial." in page and "(unreliable)" in page
    assert "&lt;img src=x" in page and "<img src" not in page and "<script>window" not in page
