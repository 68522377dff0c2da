"""The HTML report in real headless Chromium (Debian `chromium`, driven by Playwright; no browser download).

Pages load from file:// with zero console errors and no request outside file:/data:, headers sort both ways,
hostile strings stay inert text, charts render, the CSP blocks any script that is not ours.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.test_report_html_data import IMG, SCRIPT, board_and_trials, hostile_id

from shipbench.report.html import render_html
from shipbench.report.html_text import page_name

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")


class Watched:
    """A page plus everything it logged or requested."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.failed: list[str] = []
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("requestfailed", lambda r: self.failed.append(r.url))

    def open(self, path: Path) -> Watched:
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")
        return self

    def assert_clean(self) -> None:
        bad = [c for c in self.console if c[0] in ("error", "warning")]
        assert not bad and not self.errors, (bad, self.errors)
        assert not self.failed, self.failed
        assert self.requests and all(u.startswith(("file:", "data:")) for u in self.requests), self.requests


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    board, trials = board_and_trials(root / "results")
    return render_html(board, trials, root / "report")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=True)
    yield Watched(context.new_page())
    context.close()


def test_every_page_loads_offline_without_errors(report: Path, browser: Any) -> None:
    pages = [report, *sorted((report.parent / "trials").iterdir())]
    for path in pages:
        context = browser.new_context()
        watched = Watched(context.new_page()).open(path)
        watched.assert_clean()
        assert watched.page.evaluate("document.querySelectorAll('script').length") == 1
        context.close()


def _column(tab: Watched, table: str, index: int, attr: bool) -> list[str]:
    js = ("([sel, i, attr]) => Array.from(document.querySelectorAll(sel + ' tbody tr'))"
          ".map(r => attr ? r.cells[i].getAttribute('data-v') : r.cells[i].textContent.trim())")
    return list(tab.page.evaluate(js, [table, index, attr]))


def _click(tab: Watched, table: str, header: str) -> str:
    th = tab.page.locator(f"{table} thead th", has_text=header).first
    th.locator("button").click()
    return str(th.get_attribute("aria-sort"))


def test_sorting_numeric_and_text_columns_both_ways(report: Path, tab: Watched) -> None:
    tab.open(report)
    table = "#leaderboard"
    heads = tab.page.locator(f"{table} thead th").all_inner_texts()
    score_i = next(i for i, h in enumerate(heads) if h.startswith("Score"))
    name_i = heads.index(next(h for h in heads if h.startswith("Configuration")))

    assert _click(tab, table, "Score") == "ascending"
    scores = [float(v) for v in _column(tab, table, score_i, attr=True)]
    assert scores == sorted(scores) and len(scores) == 4
    assert _click(tab, table, "Score") == "descending"
    assert [float(v) for v in _column(tab, table, score_i, attr=True)] == sorted(scores, reverse=True)

    assert _click(tab, table, "Configuration") == "ascending"
    names = _column(tab, table, name_i, attr=False)
    assert names == sorted(names, key=str.lower) and names[0].startswith("claude")
    assert tab.page.locator(f"{table} thead th", has_text="Score").first.get_attribute("aria-sort") == "none"
    assert _click(tab, table, "Configuration") == "descending"
    assert _column(tab, table, name_i, attr=False) == sorted(names, key=str.lower, reverse=True)
    tab.assert_clean()


def test_missing_values_sort_last_both_ways(report: Path, tab: Watched) -> None:
    tab.open(report)
    heads = tab.page.locator("#trials thead th").all_inner_texts()
    score_i = next(i for i, h in enumerate(heads) if h.startswith("Score"))
    for expected in ("ascending", "descending"):
        assert _click(tab, "#trials", "Score") == expected
        values = _column(tab, "#trials", score_i, attr=True)
        assert values[-1] == "" and "" not in values[:-1]  # the infra trial (no score) stays at the bottom


def test_hostile_strings_never_execute_and_show_as_text(report: Path, tab: Watched) -> None:
    tab.open(report.parent / "trials" / page_name(hostile_id()))
    page = tab.page
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    body = page.locator("body").inner_text()
    assert body.count(SCRIPT) >= 5  # file name, finding, evidence snippet, final message, status reason, watchdog
    assert IMG in body
    tab.assert_clean()
    # a click through to the evidence file stays inside the trial's workspace
    href = page.locator(".evidence a").first.get_attribute("href")
    assert href is not None and not href.startswith(("javascript:", "http"))


def test_huge_line_is_clipped(report: Path, tab: Watched) -> None:
    tab.open(report.parent / "trials" / page_name(hostile_id()))
    message = tab.page.locator("#final-message").inner_text()
    assert "[clipped " in message
    assert max(len(line) for line in message.splitlines()) < 400
    width = tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1300  # nothing blows the layout sideways


def test_charts_render_as_inline_svg(report: Path, tab: Watched) -> None:
    tab.open(report)
    boxes = tab.page.evaluate(
        "Array.from(document.querySelectorAll('svg.chart')).map(s => [s.getBoundingClientRect().width,"
        " s.querySelectorAll('circle, rect, polyline').length])")
    assert len(boxes) == 4
    assert all(w > 200 and marks > 0 for w, marks in boxes)
    assert tab.page.locator("svg.chart polyline.pareto").count() >= 1
    tab.assert_clean()


def test_csp_blocks_a_script_that_is_not_ours(report: Path, tab: Watched, tmp_path: Path) -> None:
    tampered = tmp_path / "index.html"
    shutil.copy(report, tampered)
    html = tampered.read_text().replace("</body>", "<script>window.__injected=1</script></body>")
    tampered.write_text(html)
    tab.open(tampered)
    assert tab.page.evaluate("typeof window.__injected") == "undefined"
    assert any("Content Security Policy" in text for _, text in tab.console)
    # our own script still runs: sorting works on the tampered page
    assert _click(tab, "#leaderboard", "Rank") == "ascending"
