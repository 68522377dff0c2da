"""Charts for the HTML report as inline SVG, built with xml.etree so every label is escaped by construction.

Invariants: each chart function returns one well-formed `<svg>` element as a string (parseable by xml.etree),
uses presentation attributes only (no `style` attributes, no scripts, no external references), and clips labels;
an empty input gives a small "no data" chart rather than an error.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shipbench.report.html_text import one_line

SVG_NS = "http://www.w3.org/2000/svg"
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
TIER_COLORS = {"A": "#009E73", "B": "#56B4E9", "C": "#E69F00", "D": "#D55E00"}
STATUS_OK = {"completed", "completed_with_errors"}
W, H = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 44
MAX_LABELS = 8  # above this, only Pareto-front points get a text label (all keep a hover title)


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    group: str = ""


@dataclass(frozen=True)
class Interval:
    label: str
    mean: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class TierCounts:
    label: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Span:
    label: str
    start: float
    end: float
    status: str = "completed"


def _attrs(values: dict[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        name = key.rstrip("_").replace("_", "-")
        out[name] = f"{value:.1f}" if isinstance(value, float) else str(value)
    return out


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    child = ET.SubElement(parent, tag, _attrs(attrs))
    if text is not None:
        child.text = text
    return child


def _root(title: str, width: int = W, height: int = H) -> ET.Element:
    root = ET.Element("svg", _attrs({
        "xmlns": SVG_NS, "viewBox": f"0 0 {width} {height}", "width": width, "height": height,
        "role": "img", "aria_label": one_line(title, 100), "class": "chart", "font_family": "sans-serif",
        "font_size": 11,
    }))
    _el(root, "title", one_line(title, 100))
    return root


def _done(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode", short_empty_elements=True)


def _empty(title: str) -> str:
    root = _root(title, W, 60)
    _el(root, "text", "no data", x=W / 2, y=35.0, text_anchor="middle", fill="#666")
    return _done(root)


def _step(span: float, count: int) -> float:
    raw = span / count
    mag: float = 10.0 ** math.floor(math.log10(raw))
    return next(float(m * mag) for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `high`."""
    return nice_range(0.0, high, count)


def nice_range(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (a degenerate range is widened around its value)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high - low <= 1e-12:
        pad = abs(high) * 0.1 or 1.0
        low, high = (max(low - pad, 0.0) if low >= 0 else low - pad), high + pad
    step = _step(high - low, count)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _x_range(values: list[float]) -> list[float]:
    """Axis ticks for x: from 0 when the data sits near 0, else a padded window around the data."""
    lo, hi = min(values), max(values)
    if lo <= 0 or lo < 0.4 * hi:
        return nice_range(min(lo, 0.0), hi)
    pad = (hi - lo) * 0.15 or hi * 0.1
    return nice_range(lo - pad, hi + pad)


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Points not dominated by another (lower-or-equal x AND higher-or-equal y, one strictly), by ascending x."""
    front: list[Point] = []
    best = -math.inf
    for p in sorted(points, key=lambda p: (p.x, -p.y)):
        if p.y > best:
            front.append(p)
            best = p.y
    return front


def _fmt_tick(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.2g}"


def _axes(root: ET.Element, xt: list[float], yt: list[float], sx: Callable[[float], float],
          sy: Callable[[float], float], x_label: str, y_label: str) -> None:
    grid = _el(root, "g", stroke="#ddd", stroke_width=1)
    for v in yt:
        _el(grid, "line", x1=LEFT, x2=W - RIGHT, y1=sy(v), y2=sy(v))
        _el(root, "text", _fmt_tick(v), x=LEFT - 6, y=sy(v) + 4, text_anchor="end", fill="#444")
    for v in xt:
        _el(grid, "line", x1=sx(v), x2=sx(v), y1=TOP, y2=H - BOTTOM)
        _el(root, "text", _fmt_tick(v), x=sx(v), y=H - BOTTOM + 16, text_anchor="middle", fill="#444")
    _el(root, "text", one_line(x_label, 60), x=(LEFT + W - RIGHT) / 2, y=H - 8.0, text_anchor="middle")
    _el(root, "text", one_line(y_label, 40), x=14, y=(TOP + H - BOTTOM) / 2, text_anchor="middle",
        transform=f"rotate(-90 14 {(TOP + H - BOTTOM) / 2:.1f})")


def _legend(root: ET.Element, groups: list[str]) -> None:
    x = float(LEFT)
    for i, name in enumerate(groups[: len(PALETTE)]):
        _el(root, "circle", cx=x + 5, cy=14.0, r=5, fill=PALETTE[i])
        label = one_line(name, 24)
        _el(root, "text", label, x=x + 14, y=18.0, fill="#222")
        x += 24 + 7 * len(label)
    if len(groups) > len(PALETTE):
        _el(root, "text", f"+{len(groups) - len(PALETTE)} more (colours repeat)", x=x, y=18.0, fill="#666")


def scatter(points: Sequence[Point], title: str, x_label: str, y_label: str, *, front: bool = False,
            y_max: float = 100.0) -> str:
    """Scatter of configurations; with `front`, the Pareto front (low x, high y) drawn as a line.

    With more than MAX_LABELS points only front points are labelled, so labels stay readable.
    """
    pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    if not pts:
        return _empty(title)
    root = _root(title)
    xt = _x_range([p.x for p in pts])
    yt = nice_ticks(max(y_max, max(p.y for p in pts)))
    def sx(v: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * (v - xt[0]) / (xt[-1] - xt[0])
    def sy(v: float) -> float:
        return H - BOTTOM - (H - TOP - BOTTOM) * v / yt[-1]
    _axes(root, xt, yt, sx, sy, x_label, y_label)
    groups = sorted({p.group for p in pts})
    fr = pareto_front(pts)
    labelled = set(map(id, pts if len(pts) <= MAX_LABELS else fr))
    if front:
        coords = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in fr)
        _el(root, "polyline", points=coords, fill="none", stroke="#333", stroke_width=1.5, stroke_dasharray="5 3",
            class_="pareto")
    marks = _el(root, "g", class_="points")
    for p in pts:
        color = PALETTE[groups.index(p.group) % len(PALETTE)]
        dot = _el(marks, "circle", cx=sx(p.x), cy=sy(p.y), r=5, fill=color, stroke="#fff", stroke_width=1)
        _el(dot, "title", f"{one_line(p.label, 80)}: {x_label} {p.x:g}, {y_label} {p.y:g}")
        if id(p) not in labelled:
            continue
        right = sx(p.x) > W * 0.62
        _el(marks, "text", one_line(p.label, 28), x=sx(p.x) + (-7 if right else 7), y=sy(p.y) - 6, fill="#333",
            font_size=10, text_anchor="end" if right else "start")
    if len(groups) > 1 or groups[0]:
        _legend(root, groups)
    return _done(root)


def intervals(items: Sequence[Interval], title: str = "Score with 95% interval") -> str:
    """One row per configuration: mean as a dot, interval as a whisker on a 0-100 axis."""
    if not items:
        return _empty(title)
    row_h, label_w = 22, 210
    height = TOP + BOTTOM + row_h * len(items)
    root = _root(title, W, height)
    def sx(v: float) -> float:
        return label_w + (W - label_w - RIGHT) * max(0.0, min(100.0, v)) / 100.0
    for v in range(0, 101, 20):
        _el(root, "line", x1=sx(v), x2=sx(v), y1=TOP - 6, y2=height - BOTTOM + 4, stroke="#ddd")
        _el(root, "text", str(v), x=sx(v), y=height - BOTTOM + 18, text_anchor="middle", fill="#444")
    for i, item in enumerate(items):
        y = TOP + row_h * i + row_h / 2
        _el(root, "text", one_line(item.label, 32), x=label_w - 8, y=y + 4, text_anchor="end", fill="#222")
        if item.low is not None and item.high is not None:
            bar = _el(root, "g", stroke="#0072B2", stroke_width=2, class_="whisker")
            _el(bar, "line", x1=sx(item.low), x2=sx(item.high), y1=y, y2=y)
            _el(bar, "line", x1=sx(item.low), x2=sx(item.low), y1=y - 5, y2=y + 5)
            _el(bar, "line", x1=sx(item.high), x2=sx(item.high), y1=y - 5, y2=y + 5)
        dot = _el(root, "circle", cx=sx(item.mean), cy=y, r=4.5, fill="#000")
        span = "single run: no interval" if item.low is None or item.high is None else (
            f"95% CI {item.low:.1f}–{item.high:.1f}")
        _el(dot, "title", f"{one_line(item.label, 80)}: mean {item.mean:.1f}, {span}")
    return _done(root)


def tier_bars(items: Sequence[TierCounts], title: str = "Tier distribution") -> str:
    """Stacked horizontal bars: the share of trials per tier (A-D), one bar per configuration."""
    rows = [it for it in items if sum(it.counts.values()) > 0]
    if not rows:
        return _empty(title)
    row_h, label_w = 22, 210
    height = TOP + BOTTOM + row_h * len(rows)
    root = _root(title, W, height)
    x = float(label_w)
    for tier, color in TIER_COLORS.items():
        _el(root, "rect", x=x, y=6.0, width=10, height=10, fill=color)
        _el(root, "text", f"Tier {tier}", x=x + 14, y=15.0, fill="#222")
        x += 64
    span = W - label_w - RIGHT
    for i, item in enumerate(rows):
        y = TOP + row_h * i + 3
        total = sum(item.counts.values())
        _el(root, "text", one_line(item.label, 32), x=label_w - 8, y=y + 12, text_anchor="end", fill="#222")
        x = float(label_w)
        for tier, color in TIER_COLORS.items():
            n = item.counts.get(tier, 0)
            if n <= 0:
                continue
            width = span * n / total
            rect = _el(root, "rect", x=x, y=float(y), width=width, height=row_h - 6, fill=color, class_="tier")
            _el(rect, "title", f"{one_line(item.label, 80)}: tier {tier} in {n} of {total} trials")
            x += width
    return _done(root)


def timeline(spans: Sequence[Span], title: str = "Phase timeline") -> str:
    """Phases as bars on a shared seconds axis; failed phases in orange-red."""
    spans = [s for s in spans if math.isfinite(s.start) and math.isfinite(s.end)]
    if not spans:
        return _empty(title)
    row_h, label_w = 24, 140
    height = TOP + BOTTOM + row_h * len(spans)
    root = _root(title, W, height)
    ticks = nice_ticks(max(s.end for s in spans) or 1.0)
    def sx(v: float) -> float:
        return label_w + (W - label_w - RIGHT) * v / ticks[-1]
    for v in ticks:
        _el(root, "line", x1=sx(v), x2=sx(v), y1=TOP - 6, y2=height - BOTTOM + 4, stroke="#ddd")
        _el(root, "text", f"{_fmt_tick(v)} s", x=sx(v), y=height - BOTTOM + 18, text_anchor="middle", fill="#444")
    for i, s in enumerate(spans):
        y = TOP + row_h * i + 3
        color = "#0072B2" if s.status in STATUS_OK else "#D55E00"
        _el(root, "text", one_line(s.label, 20), x=label_w - 8, y=y + 13, text_anchor="end", fill="#222")
        rect = _el(root, "rect", x=sx(s.start), y=float(y), width=max(1.0, sx(s.end) - sx(s.start)),
                   height=row_h - 6, fill=color, class_="phase")
        _el(rect, "title", f"{one_line(s.label, 60)}: {s.end - s.start:.1f} s, {one_line(s.status, 30)}")
    return _done(root)
