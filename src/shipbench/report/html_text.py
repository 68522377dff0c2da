"""Text hygiene for the HTML report: every project/agent string passes through `clean` before a template sees it.

Invariants: `clean` output holds no ESC/C0/C1 control or bidi-override characters (tab and newline kept), no line
longer than `max_line` characters and no more than `max_lines` lines, and says how much it clipped. HTML escaping is
NOT done here: the jinja environment autoescapes everything; these helpers only make text readable and bounded.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import quote

# CSI (ESC [ ... final), OSC (ESC ] ... BEL | ESC \), 8-bit CSI, and the remaining two-byte ESC sequences.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b[@-Z\\-_]?"
)
# Control characters other than tab/newline, C1 controls, and bidi overrides/isolates (trojan-source reordering).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

MAX_LINE = 240
MAX_LINES = 400


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences and invisible control characters; normalise newlines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", _ANSI.sub("", text))


def clip_line(line: str, max_line: int = MAX_LINE) -> str:
    if len(line) <= max_line:
        return line
    return f"{line[:max_line]}… [clipped {len(line) - max_line} chars]"


def clean(value: object, max_line: int = MAX_LINE, max_lines: int = MAX_LINES) -> str:
    """Readable, bounded text for display: ANSI stripped, each line clipped, line count capped."""
    text = strip_ansi("" if value is None else str(value))
    lines = text.split("\n")
    extra = len(lines) - max_lines
    if extra > 0:
        lines = lines[:max_lines]
    out = "\n".join(clip_line(line, max_line) for line in lines)
    if extra > 0:
        out += f"\n… [clipped {extra} more lines]"
    return out


def one_line(value: object, max_len: int = 120) -> str:
    """A single clipped line (for table cells and titles): newlines become spaces."""
    return clip_line(" ".join(strip_ansi("" if value is None else str(value)).split()), max_len)


def page_name(trial_id: str) -> str:
    """A file name for a trial page that is safe and unique: sanitised id, plus a hash when sanitising changed it."""
    cleaned = _UNSAFE_NAME.sub("-", trial_id).strip("-.")[:100] or "trial"
    if cleaned != trial_id:
        cleaned += "-" + hashlib.sha256(trial_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return cleaned + ".html"


def workspace_href(workspace: Path | None, rel_path: str, page_dir: Path, line: int = 0) -> str | None:
    """Relative URL from a page in `page_dir` to a file inside `workspace`, or None when it is unsafe or absent.

    The path must stay inside the workspace (no absolute paths, no `..`), and every segment is percent-encoded,
    so a hostile file name can neither escape the workspace nor become a `javascript:` URL.
    """
    if workspace is None or not rel_path:
        return None
    pure = PurePosixPath(rel_path)
    if pure.is_absolute() or ".." in pure.parts or "\x00" in rel_path:
        return None
    target = workspace / pure
    try:
        resolved = target.resolve()
        if not resolved.is_relative_to(workspace.resolve()) or not resolved.is_file():
            return None
    except (OSError, ValueError):
        return None
    rel = os.path.relpath(target, page_dir)
    href = "/".join(quote(part, safe="") for part in PurePosixPath(Path(rel).as_posix()).parts)
    return f"{href}#L{line}" if line > 0 else href


def fmt_num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "–"
    if value != 0 and abs(value) < 0.1:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def fmt_secs(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
