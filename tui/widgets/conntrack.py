"""The connection's entry as ``conntrack -L`` prints it at the current step."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from sim.api import CtState, NsRole
from tui.rows import Tone
from tui.session import Cursor, Session, ct
from tui.widgets.style import INK


class ConntrackLine(Static):
    def show(self, s: Session, c: Cursor) -> None:
        e = s.event(c)
        entry = s.entry_at(c)
        out = Text()
        ctstate = next(
            (d.ctstate for x in s.packet_events(c.packet)[: c.step + 1] if (d := ct(x)) and d.ctstate),
            None,
        )
        if ctstate is CtState.INVALID and e.ns == NsRole.HOST:
            out.append("[packet INVALID: no entry attached] ", style=f"bold {INK[Tone.INVALID]}")
        if entry is None:
            out.append("no entry yet", style="dim")
        else:
            out.append(entry)
        self.update(out, layout=False)
