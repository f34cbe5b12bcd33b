"""The "why" panel: the current step in plain words; for the window check, the four bounds and
the tracker's per-direction state before and after.

Rendered as wrapped text lines with its own scroll offset, so a step costs no layout pass.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widget import Widget

from tui.rows import (
    TRACKER_FIELDS,
    Tone,
    WindowView,
    explain,
    short_rule,
    step_row,
    window_view,
)
from tui.session import Cursor, Session
from tui.terms import TERMS, used
from tui.widgets.style import INK, badge

DIRS = ("original", "reply")


def bounds_text(w: WindowView, width: int) -> Text:
    """Each bound on two lines: name and formula, then limit, the packet's value and pass/FAIL."""
    out = Text()
    for b in w.bounds:
        rule = b.rule if width >= len(b.rule) + 5 else short_rule(b.rule)
        out.append(f"{b.name:<4}", style="bold")
        out.append(f"{rule}\n", style="bold" if not b.passed else "")
        if width >= 44:
            out.append(f"    limit {b.limit:>10}  packet {b.value:>10}  ")
        else:
            out.append(f"  lim {b.limit:>10} pkt {b.value:>10}")
        out.append_text(badge("pass", Tone.ACCEPT) if b.passed else badge("FAIL", Tone.DROP))
        out.append("\n")
    out.rstrip()
    return out


def tracker_text(w: WindowView, width: int) -> Text:
    """td_end, td_maxend, td_maxwin, scale for both directions, before -> after."""
    out = Text()
    if width >= 56:
        roles = [f"{DIRS[d]} ({'sender' if d == w.sender else 'receiver'})" for d in (0, 1)]
        out.append(f"{'':10}{roles[0]:>22}  {roles[1]:>22}\n", style="dim")
        out.append(f"{'':10}{'before':>11}{'after':>11}  {'before':>11}{'after':>11}\n", style="dim")
        for f in TRACKER_FIELDS:
            out.append(f"{f:<10}")
            for d in (0, 1):
                before, after = w.before[d].get(f), w.after[d].get(f)
                out.append(f"{before!s:>11}")
                if before == after:
                    out.append(f"{'=':>11}", style="dim")
                else:
                    out.append(f"{after!s:>11}", style=f"bold {INK[Tone.IGNORE]}")
                out.append("  " if d == 0 else "\n")
    else:
        for d in (0, 1):
            role = "sender" if d == w.sender else "receiver"
            out.append(f"{DIRS[d]} ({role}), before / after\n", style="dim")
            for f in TRACKER_FIELDS:
                before, after = w.before[d].get(f), w.after[d].get(f)
                out.append(f"  {f:<10}{before!s:>11} ")
                out.append("=" if before == after else str(after), style="dim" if before == after else "bold")
                out.append("\n")
    out.rstrip()
    return out


class WhyPanel(Widget):
    """Plain words for the current step; the mouse wheel or pgup/pgdn scroll it when it is long."""

    DEFAULT_CSS = "WhyPanel { height: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._session: Session | None = None
        self._cursor: Cursor | None = None
        self.offset_lines = 0
        self._note = ""  # what the last re-run changed (80x24), until the cursor moves on
        self._note_at: Cursor | None = None
        self._quiz = False

    def note(self, text: str) -> None:
        self._note, self._note_at = text, None
        self.refresh()

    def show(self, s: Session, c: Cursor, quiz: bool = False) -> None:
        """``quiz``: a question is open, and the words may answer it: they wait for the answer."""
        self._quiz = quiz
        if self._note and self._note_at is None:
            self._note_at = c
        elif self._note and c != self._note_at:
            self._note = ""
        self._session, self._cursor = s, c
        self.offset_lines = 0
        self.refresh()

    def scroll_lines(self, n: int) -> None:
        self.offset_lines = max(0, self.offset_lines + n)
        self.refresh()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.scroll_lines(2)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.scroll_lines(-2)

    def text(self, width: int) -> Text:
        """The whole panel as one Text for this width (tests read it too)."""
        s, c = self._session, self._cursor
        if s is None or c is None:
            return Text()
        e = s.event(c)
        r = step_row(e)
        out = Text()
        if self._note:
            out.append(f"{self._note}\n", style=f"bold {INK[Tone.IGNORE]}")
        out.append_text(
            Text.assemble((f"{r.where} {r.hook} · {r.what} ", "bold"), badge(r.verdict, r.tone), "\n")
        )
        if self._quiz:
            out.append("The why of this step shows once you have answered.", style="dim")
            return out
        # the words first; a failed bound stands out in the verdict's colour (amber when the
        # tracker ignores it, red when it makes the packet INVALID, plain when be_liberal accepts)
        failed = (
            "" if r.tone is Tone.ACCEPT else f"bold {INK[Tone.DROP if r.tone is Tone.INVALID else r.tone]}"
        )
        for line in explain(s, c):
            out.append(line + "\n", style=failed if line.startswith("Out of window") else "")
        w = window_view(e)
        if w is not None:
            out.append("tcp_in_window(): the four bounds\n", style="bold underline")
            out.append_text(bounds_text(w, width))
            out.append("\n")
            out.append("the tracker, before and after this packet\n", style="bold underline")
            out.append_text(tracker_text(w, width))
            out.append("\n")
        words = used(out.plain)
        if words:
            out.append("words on this screen\n", style="bold underline")
            for term in words:
                out.append(f"{term}", style="bold")
                out.append(f": {TERMS[term]}\n")
        out.rstrip()
        return out

    def render(self) -> Text:
        width, height = max(self.size.width, 1), max(self.size.height, 1)
        lines = self.text(width).wrap(self.app.console, width)
        more = len(lines) - self.offset_lines > height
        self.offset_lines = min(self.offset_lines, max(len(lines) - height, 0))
        shown = list(lines)[self.offset_lines : self.offset_lines + height]
        if more and shown:
            shown[-1] = Text(
                f"... {len(lines) - self.offset_lines - height + 1} more lines (pgdn)", style="dim"
            )
        return Text("\n").join(shown)
