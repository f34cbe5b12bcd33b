"""The "why" panel: the current step in plain words; for the window check, the four bounds and
the tracker's per-direction state before and after."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.model import (
    TRACKER_FIELDS,
    Cursor,
    Session,
    Tone,
    WindowView,
    explain,
    short_rule,
    step_row,
    window_view,
)
from tui.widgets.style import INK, badge

DIRS = ("original", "reply")


def bounds_text(w: WindowView, width: int) -> Text:
    """Each bound on two lines: name and formula, then limit, the packet's value and pass/FAIL."""
    out = Text()
    for b in w.bounds:
        rule = b.rule if width >= len(b.rule) + 5 else short_rule(b.rule)
        out.append(f"{b.name:<4}", style="bold")
        out.append(f"{rule}\n", style="bold" if not b.passed else "")
        out.append(f"    limit {b.limit:>10}  packet {b.value:>10}  ")
        out.append_text(badge("pass", Tone.ACCEPT) if b.passed else badge("FAIL", Tone.DROP))
        out.append("\n")
    out.rstrip()
    return out


def tracker_table(w: WindowView) -> Table:
    t = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, header_style="dim")
    t.add_column("tracker", no_wrap=True)
    for d in (0, 1):
        role = "sender" if d == w.sender else "receiver"
        t.add_column(f"{DIRS[d]} ({role})", justify="right", no_wrap=True)
        t.add_column("after", justify="right", no_wrap=True)
    for f in TRACKER_FIELDS:
        cells: list[Text | str] = [f]
        for d in (0, 1):
            before, after = w.before[d].get(f), w.after[d].get(f)
            cells.append(str(before))
            same = before == after
            cells.append(
                Text("=" if same else str(after), style="dim" if same else f"bold {INK[Tone.IGNORE]}")
            )
        t.add_row(*cells)
    return t


class WhyPanel(VerticalScroll, can_focus=False):
    """Plain words for the current step; scrolls when the terminal is short."""

    def compose(self) -> ComposeResult:
        yield Static(id="why-body")

    def show(self, s: Session, c: Cursor) -> None:
        e = s.event(c)
        r = step_row(e)
        head = Text.assemble((f"{r.where} {r.hook} · {r.what} ", "bold"), badge(r.verdict, r.tone))
        parts: list[RenderableType] = [head]
        parts.extend(Text(p) for p in explain(s, c))
        w = window_view(e)
        if w is not None:
            parts.append(Text("tcp_in_window(): the four bounds", style="bold"))
            parts.append(bounds_text(w, self.size.width - 2))
            parts.append(Text("the tracker per direction, before and after this packet", style="bold"))
            parts.append(tracker_table(w))
        self.query_one("#why-body", Static).update(Group(*parts))
        self.scroll_home(animate=False)
