"""Table view models for the HTML templates: cells carry display text plus a machine sort key.

Invariants: cell text is already cleaned (ANSI stripped, clipped) but never HTML-escaped here (the templates
autoescape); a numeric column's sort key is a plain float string or None (missing values sort last in both
directions); `generic_table` renders any list of pydantic models, so a new leaderboard view needs no new code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from shipbench.report.html_text import one_line


@dataclass
class Cell:
    text: str
    sort: str | None = None  # data-v: machine value for sorting (None: sort by the visible text)
    num: bool = False
    href: str | None = None
    kind: str = ""  # "" | tier | status | code
    title: str = ""
    mark: str = ""  # e.g. "≈" for a not-separable neighbour
    mark_title: str = ""


@dataclass
class Column:
    name: str
    num: bool = False
    title: str = ""


@dataclass
class Table:
    id: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str = ""
    sortable: bool = True
    empty: str = "Nothing to show."


def text(value: object, max_len: int = 120, kind: str = "", href: str | None = None, title: str = "") -> Cell:
    return Cell(one_line(value, max_len) if value is not None else "–", kind=kind, href=href,
                title=one_line(title, 300))


def num(value: float | int | None, shown: str | None = None, title: str = "") -> Cell:
    """A numeric cell: `shown` is the display text, the sort key is the raw number."""
    ok = value is not None and not (isinstance(value, float) and not math.isfinite(value))
    if not ok:
        return Cell("–", sort="", num=True, title=one_line(title, 300))
    assert value is not None
    display = shown if shown is not None else (f"{value:,}" if isinstance(value, int) else f"{value:,.1f}")
    return Cell(display, sort=repr(float(value)), num=True, title=one_line(title, 300))


def _header(name: str) -> str:
    return name.replace("_", " ")


def _cell_for(value: object) -> Cell:
    if isinstance(value, bool):
        return text("yes" if value else "no")
    if isinstance(value, int | float):
        return num(value, f"{value:,.3g}" if isinstance(value, float) and abs(value) < 1 else None)
    if value is None:
        return text(None)
    if isinstance(value, BaseModel):
        return text(", ".join(f"{k}={v}" for k, v in value.model_dump().items() if v not in (None, "", [], {})))
    if isinstance(value, dict):
        return text(", ".join(f"{k}: {v}" for k, v in value.items()))
    if isinstance(value, list | tuple):
        return text(", ".join(str(v) for v in value))
    return text(value)


def generic_table(table_id: str, items: Sequence[BaseModel], caption: str = "", exclude: Sequence[str] = (),
                  empty: str = "Nothing to show.") -> Table:
    """A sortable table with one column per field of the models (in declaration order)."""
    if not items:
        return Table(table_id, [], [], caption, empty=empty)
    fields = [name for name in type(items[0]).model_fields if name not in exclude]
    rows = [[_cell_for(getattr(item, name, None)) for name in fields] for item in items]
    nums = [all(r[i].num or r[i].text == "–" for r in rows) and any(r[i].num for r in rows)
            for i in range(len(fields))]
    for row in rows:
        for i, c in enumerate(row):
            if nums[i] and not c.num:
                row[i] = num(None)
    columns = [Column(_header(name), num=nums[i]) for i, name in enumerate(fields)]
    return Table(table_id, columns, rows, caption, empty=empty)
