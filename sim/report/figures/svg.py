"""The SVG writer the figures share: fixed number formatting, one style sheet, and the
time axis and panels of the two plots."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

STYLE = """
text { font-family: sans-serif; font-size: 15px; fill: #222; }
.small { font-size: 14px; }
.mono { font-family: monospace; font-size: 14px; }
.title { font-size: 17px; font-weight: bold; }
.axis { stroke: #444; stroke-width: 1; fill: none; }
.grid { stroke: #ddd; stroke-width: 1; fill: none; }
.ns { fill: #f4f6fb; stroke: #7a869a; stroke-width: 1.5; }
.dev { fill: #ffffff; stroke: #34495e; stroke-width: 1.2; }
.bridge { fill: #fff8e1; stroke: #a67c00; stroke-width: 1.2; }
.link { stroke: #34495e; stroke-width: 2.5; fill: none; }
.route { stroke: #7a869a; stroke-width: 1.5; stroke-dasharray: 2 3; fill: none; }
.port { stroke: #a67c00; stroke-width: 2; stroke-dasharray: 5 3; fill: none; }
.data { stroke: #1f5fa8; stroke-width: 1.5; fill: none; }
.retx { stroke: #e67e22; stroke-width: 1.5; fill: #e67e22; }
.ack { stroke: #2e8b57; stroke-width: 1.5; stroke-dasharray: 3 2; fill: none; }
.late { stroke: #c0392b; stroke-width: 1.5; fill: #c0392b; }
.held { stroke: #c0392b; stroke-width: 1.2; stroke-dasharray: 4 3; fill: none; }
.rst { stroke: #c0392b; stroke-width: 2.5; fill: none; }
.band { fill: #d6eaf8; stroke: none; }
.upper { stroke: #1f5fa8; stroke-width: 1.2; fill: none; }
.lower { stroke: #8e44ad; stroke-width: 1.5; stroke-dasharray: 6 3; fill: none; }
.ackdot { fill: #2e8b57; stroke: none; }
.bad { fill: none; stroke: #c0392b; stroke-width: 2; }
.red { fill: #c0392b; }
"""


def num(x: float) -> str:
    """Fixed formatting for every coordinate: one decimal, never ``-0.0``."""
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text


class Svg:
    """A tiny SVG writer: elements appended in order, rendered with fixed number formatting."""

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = [f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>"]
        self.parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')

    def add(self, tag: str, cls: str | None = None, text: str | None = None, **attrs: float | str) -> None:
        """One element; float attributes go through :func:`num`, ``_`` in names becomes ``-``."""
        items = [f"class={quoteattr(cls)}"] if cls else []
        for key, value in attrs.items():
            shown = num(value) if isinstance(value, float) else str(value)
            items.append(f"{key.rstrip('_').replace('_', '-')}={quoteattr(shown)}")
        head = f"<{tag} {' '.join(items)}"
        self.parts.append(f"{head}>{escape(text)}</{tag}>" if text is not None else f"{head}/>")

    def text(self, x: float, y: float, s: str, cls: str | None = None, anchor: str = "start") -> None:
        if anchor == "start":
            self.add("text", cls, s, x=x, y=y)
        else:
            self.add("text", cls, s, x=x, y=y, text_anchor=anchor)

    def line(self, x1: float, y1: float, x2: float, y2: float, cls: str) -> None:
        self.add("line", cls, x1=x1, y1=y1, x2=x2, y2=y2)

    def rect(self, x: float, y: float, w: float, h: float, cls: str, rx: float = 0.0) -> None:
        self.add("rect", cls, x=x, y=y, width=w, height=h, rx=rx)

    def path(self, points: Sequence[tuple[float, float]], cls: str, close: bool = False) -> None:
        if not points:
            return
        d = " ".join(f"{'M' if i == 0 else 'L'}{num(x)} {num(y)}" for i, (x, y) in enumerate(points))
        self.add("path", cls, d=d + (" Z" if close else ""))

    def segments(self, segs: Iterable[tuple[float, float, float, float]], cls: str) -> None:
        """Many short lines as one path (``M x1 y1 L x2 y2`` per segment)."""
        d = " ".join(f"M{num(a)} {num(b)} L{num(c)} {num(e)}" for a, b, c, e in segs)
        if d:
            self.add("path", cls, d=d)

    def render(self) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}">'
        )
        return "\n".join([head, *self.parts, "</svg>"]) + "\n"


@dataclass(frozen=True, slots=True)
class TimeAxis:
    """Linear from 0 to ``knee`` seconds over ``split`` of the width, then log10 up to ``t_max``."""

    x0: float
    width: float
    knee: float
    t_max: float
    split: float = 0.62

    def x(self, t: float) -> float:
        if t <= self.knee:
            return self.x0 + self.width * self.split * t / self.knee
        frac = math.log10(t / self.knee) / math.log10(self.t_max / self.knee)
        return self.x0 + self.width * (self.split + (1 - self.split) * min(frac, 1.0))

    def ticks(self) -> list[tuple[float, str]]:
        lin = [(self.knee * i / 5, f"{self.knee * i / 5:g}") for i in range(6)]
        logs, t = [], self.knee * 10
        while t <= self.t_max * 1.0001:
            logs.append((t, f"{t:g}"))
            t *= 10
        return lin + logs


def group(points: Iterable[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """Merge the segments of one burst (same instant) into one vertical stroke."""
    merged: dict[float, tuple[int, int]] = {}
    for t, lo, hi in points:
        key = round(t, 6)
        old = merged.get(key)
        merged[key] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    return [(t, lo, hi) for t, (lo, hi) in sorted(merged.items())]


@dataclass(frozen=True, slots=True)
class Panel:
    axis: TimeAxis
    top: float
    height: float
    y_max: int

    def y(self, offset: float) -> float:
        return self.top + self.height * (1 - offset / self.y_max)


def panel_frame(svg: Svg, p: Panel, title: str) -> None:
    a = p.axis
    svg.text(a.x0, p.top - 12, title, "title")
    for i in range(5):
        value = p.y_max * i / 4
        svg.line(a.x0, p.y(value), a.x0 + a.width, p.y(value), "grid")
        svg.text(a.x0 - 6, p.y(value) + 4, f"{value / 1e6:.1f} MB", "small", anchor="end")
    for t, label in a.ticks():
        svg.line(a.x(t), p.top + p.height, a.x(t), p.top + p.height + 4, "axis")
        svg.text(a.x(t), p.top + p.height + 16, label, "small", anchor="middle")
    knee = a.x(a.knee)
    svg.line(knee, p.top, knee, p.top + p.height, "grid")
    svg.text(knee + 4, p.top + p.height - 6, "log scale from 1 s", "small")
    svg.rect(a.x0, p.top, a.width, p.height, "axis")
    svg.text(a.x0 + a.width, p.top + p.height + 30, "virtual time (s)", "small", anchor="end")
