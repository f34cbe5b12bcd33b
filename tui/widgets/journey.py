"""The packet's journey: every step it took, with its verdict; the current step highlighted."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import events
from textual.widget import Widget

from sim.api import Step, TraceEvent
from tui.messages import Clicked
from tui.rows import StepRow, rule_of, step_row
from tui.session import Cursor, Session
from tui.widgets.style import badge

_HOOKS = {"PREROUTING": "PRE", "POSTROUTING": "POST", "FORWARD": "FWD", "INPUT": "IN", "OUTPUT": "OUT"}


def _hook(text: str, compact: bool) -> str:
    if not compact:
        return text
    word, _, rest = text.partition(" ")
    return f"{_HOOKS.get(word, word)} {rest}".strip()


class Journey(Widget):
    """A table of the current packet's steps, windowed so the current one is always visible."""

    DEFAULT_CSS = "Journey { height: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._events: list[TraceEvent] = []
        self._rows_of: list[StepRow] = []
        self._current = 0
        self._head = ""
        self._packet = 0
        self._rows: list[int] = []  # the step shown on each screen line (-1: not a step)

    def show(self, s: Session, c: Cursor, hide_after: bool = False) -> None:
        """The packet's steps; with ``hide_after`` (a quiz question is open) none after the cursor."""
        events = s.packet_events(c.packet)
        first = events[0]
        pkt = first.before
        self._events = events[: c.step + 1] if hide_after else events
        self._current, self._packet = c.step, c.packet
        self._rows_of = [step_row(e, rule_of(e) if e.step is Step.LOG else None) for e in self._events]
        self._head = f"{pkt.describe()}" if pkt is not None else f"packet {first.pid}"
        self.refresh()

    def render(self) -> Group:
        width, height = self.size.width, self.size.height
        compact = width < 60  # the 80x24 layout gives the journey 50 columns
        head = Text(self._head, style="bold", overflow="fold")  # the addresses too, at every width
        head_lines = len(head.wrap(self.app.console, max(width, 1)))
        rows = max(height - head_lines - (0 if compact else 1), 1)
        visible = rows
        start = max(0, min(self._current - visible // 3, len(self._events) - visible))
        top = [-1] * (head_lines + (0 if compact else 1))
        self._rows = top + list(range(start, min(len(self._events), start + visible)))
        table = Table(
            box=None,
            padding=(0, 1, 0, 0),
            expand=True,
            show_edge=False,
            header_style="dim",
            show_header=not compact,
        )
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("device", no_wrap=True)
        if compact:
            table.add_column("hook / step", ratio=1, no_wrap=True, overflow="ellipsis")  # one line a row
        else:
            table.add_column("hook", no_wrap=True)
            table.add_column("step", ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("verdict", no_wrap=True, min_width=12)  # "TRANSLATED" as a badge, never cut
        for k in range(start, min(len(self._events), start + visible)):
            r = self._rows_of[k]
            cur = k == self._current
            num = Text(("▶" if cur else " ") + str(k + 1), style="bold" if cur else "dim")
            what = r.what if r.what != r.hook else ""
            where = r.where.removeprefix("host/").split("/")[0] if compact else r.where
            # compact: a step without a hook says only what it did ("route", "send RST")
            hook = _hook(r.hook, True) if self._events[k].hook is not None or not what else ""
            mid = [f"{hook} {what}".strip()] if compact else [r.hook, what]
            table.add_row(num, where, *mid, badge(r.verdict, r.tone), style="reverse" if cur else None)
        return Group(head, table)

    def on_click(self, event: events.Click) -> None:
        at = event.get_content_offset(self)
        if at is not None and at.y < len(self._rows) and self._rows[at.y] >= 0:
            y = at.y
            self.post_message(Clicked(Cursor(self._packet, self._rows[y])))
