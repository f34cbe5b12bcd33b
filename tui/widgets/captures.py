"""Two capture panes side by side, host uplink and container eth0, tcpdump-style."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget

from tui.messages import Clicked
from tui.rows import Tone
from tui.session import Cursor, Pane, Session
from tui.widgets.style import INK


class CapturePane(Widget):
    """The lines around the current time; the current packet's lines highlighted, RSTs in red."""

    DEFAULT_CSS = "CapturePane { width: 1fr; }"

    def __init__(self, which: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.which = which
        self._pane: Pane | None = None
        self._pid = -1
        self._kids: set[int] = set()
        self._t = 0.0
        self._hide_after = False
        self._pos: dict[int, int] = {}
        self._lines: list[int] = []  # the packet id on each screen line (-1: none)

    def show(self, s: Session, c: Cursor, hide_after: bool = False) -> None:
        """The lines around the cursor's time; with ``hide_after`` none of a later packet."""
        e = s.event(c)
        self._hide_after, self._pos = hide_after, s.pos
        self._pane = s.panes[self.which]
        self._pid, self._t = e.pid, e.t
        self._kids = set(s.pids_caused.get(e.pid, []))
        p = self._pane
        rsts = "" if hide_after else f", {p.rsts} RST"  # a quiz question may ask about the RST
        self.border_title = f"{p.title}: {len(p.lines)} pkts{rsts}"
        if self.size.width and self.size.width < 44:
            self.border_title = p.title.split(" (")[0] + rsts
        self.refresh()

    def render(self) -> Group:
        p = self._pane
        if p is None:
            return Group()
        width, height = self.size.width, self.size.height
        full = width >= 100
        # a quiz question is open: nothing from the cursor's time on (the packet's own lines, the
        # RST it causes, whether it ever reaches the container would answer it)
        mine = [] if self._hide_after else p.by_pid.get(self._pid, [])
        anchor = mine[0] if mine else p.around(self._t)
        never = Text(f"-- packet {self._pid} never seen here --", style=f"bold {INK[Tone.INVALID]}")

        def rows(i: int) -> int:
            text = p.text(i, short=not full)
            return max(1, -(-len(text) // max(width, 1)))

        start, used = anchor, 0
        while start > 0 and used + rows(start - 1) <= height // 3:
            start -= 1
            used += rows(start)
        # the addresses once, as this device saw the current packet (or the nearest line): the
        # two panes side by side show what NAT rewrote
        at = anchor - 1 if self._hide_after else anchor  # in a quiz: a line from before the cursor
        shown = p.lines[at] if 0 <= at < len(p.lines) else (p.lines[-1] if p.lines and at >= 0 else None)
        out: list[Text] = (
            [Text(shown.addrs, style="bold", overflow="ellipsis", no_wrap=True)] if shown else []
        )
        self._lines = [-1] * len(out)
        budget = height - len(out) - (0 if mine else 1)
        i = start
        while i < len(p.lines) and budget - rows(i) >= 0:
            if not mine and i == anchor and not self._hide_after:
                out.append(never)
                self._lines.append(-1)
            line = p.lines[i]
            if self._hide_after and line.t >= self._t:
                break
            style = ""
            if line.rst:
                style = f"bold {INK[Tone.DROP]}"
            if line.pid == self._pid:
                style = "reverse " + style
            elif line.pid in self._kids:
                style = "underline " + style
            out.append(Text(p.text(i, short=not full), style=style.strip(), overflow="fold"))
            self._lines.extend([line.pid] * rows(i))
            budget -= rows(i)
            i += 1
        if not mine and anchor >= i and not self._hide_after:
            out.append(never)
        return Group(*out)

    def on_click(self, event: events.Click) -> None:
        at = event.get_content_offset(self)
        if at is not None and at.y < len(self._lines) and self._lines[at.y] in self._pos:
            self.post_message(Clicked(Cursor(self._pos[self._lines[at.y]], 0)))


class Captures(Horizontal):
    def compose(self) -> ComposeResult:
        yield CapturePane(0, id="cap-host")
        yield CapturePane(1, id="cap-ctr")

    def show(self, s: Session, c: Cursor, hide_after: bool = False) -> None:
        for pane in self.query(CapturePane):
            pane.show(s, c, hide_after)
