"""Self-contained HTML report: index.html (leaderboard, charts, views) + trials/<page>.html per trial.

Invariants: every page works offline from file:// (inline CSS/JS/SVG only, nothing fetched); a strict CSP meta
allows exactly the one inline script and stylesheet by their sha256 hashes and images only from data:; jinja
autoescape is on for every template and all project/agent text is cleaned (ANSI stripped, clipped) first; page
file names come from `page_name`, never from raw trial ids.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from shipbench import __version__
from shipbench.report.html_index import index_context
from shipbench.report.html_text import page_name
from shipbench.report.html_trial import trial_context
from shipbench.report.leaderboard import Leaderboard
from shipbench.report.load import TrialRow
from shipbench.store.records import write_atomic

TEMPLATES = Path(__file__).with_name("templates")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


@lru_cache(maxsize=1)
def assets() -> tuple[str, str, str]:
    """(css, js, csp): the inline assets and the Content-Security-Policy that allows exactly them."""
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    js = (TEMPLATES / "sort.js").read_text(encoding="utf-8")
    if "</" in js or "</" in css:
        raise ValueError("inline assets must not contain '</'")
    csp = (f"default-src 'none'; script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    return css, js, csp


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _common() -> dict[str, Any]:
    css, js, csp = assets()
    return {"css": Markup(css), "js": Markup(js), "csp": csp, "version": __version__,
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def trial_href(trial_id: str) -> str:
    """The link from index.html to a trial page."""
    return "trials/" + quote(page_name(trial_id), safe="")


def render_trial(row: TrialRow, trials_dir: Path) -> Path:
    path = trials_dir / page_name(row.trial_id)
    html = environment().get_template("trial.html.j2").render(**_common(), **trial_context(row, trials_dir))
    write_atomic(path, html)
    return path


def render_index(board: Leaderboard, trials: list[TrialRow], out_dir: Path) -> Path:
    path = out_dir / "index.html"
    ctx = index_context(board, trials, trial_href)
    html = environment().get_template("index.html.j2").render(**_common(), **ctx)
    write_atomic(path, html)
    return path


def render_html(board: Leaderboard, trials: list[TrialRow], out_dir: Path) -> Path:
    """Write out_dir/index.html and one page per trial under out_dir/trials/; return the index path."""
    trials_dir = out_dir / "trials"
    trials_dir.mkdir(parents=True, exist_ok=True)
    for row in trials:
        render_trial(row, trials_dir)
    return render_index(board, trials, out_dir)


__all__ = ["render_html", "render_index", "render_trial", "trial_href"]
