"""One call from a results dir (+ imported reference-harness files) to a leaderboard and its trial rows.

Invariants: read-only over the inputs; a bad trial dir or import file ends up in `Leaderboard.skipped`;
only a missing RESULTS_DIR raises (FileNotFoundError), so the CLI can exit 2 with one line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from shipbench.report.importer import import_results
from shipbench.report.leaderboard import Leaderboard, build_leaderboard
from shipbench.report.load import TrialRow, load_results
from shipbench.report.stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED

HtmlRenderer = Callable[[Leaderboard, list[TrialRow], Path], Path]


def build_report(
    results_dir: Path, imports: list[Path] | None = None, *, level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
) -> tuple[Leaderboard, list[TrialRow]]:
    """Load, import and aggregate. Returns the leaderboard and every row (native then imported)."""
    loaded = load_results(results_dir)
    history, skipped = import_results(list(imports or []))
    board = build_leaderboard(
        loaded.trials, imported=history, skipped=loaded.skipped + skipped, level=level, resamples=resamples,
        seed=seed,
    )
    return board, loaded.trials + history


def html_renderer() -> HtmlRenderer:
    """`render_html` from shipbench.report.html (built separately); ImportError when it is absent."""
    module = importlib.import_module("shipbench.report.html")
    render: HtmlRenderer = module.render_html
    return render
