"""The connection's entry as ``conntrack -L`` prints it at the current step."""

from __future__ import annotations

import re

from rich.text import Text
from textual.widgets import Static

from sim.api import CtState, NsRole, Why
from tui.rows import Tone
from tui.session import Cursor, Session, ct
from tui.widgets.style import INK


class ConntrackLine(Static):
    def show(self, s: Session, c: Cursor) -> None:
        e = s.event(c)
        entry = s.entry_at(c)
        narrow = self.screen.has_class("-narrow")  # 80x24: two lines for the tag and the whole entry
        out = Text()
        so_far = s.packet_events(c.packet)[: c.step + 1]
        ctstate = next((d.ctstate for x in so_far if (d := ct(x)) and d.ctstate), None)
        if ctstate is CtState.INVALID and e.ns == NsRole.HOST:
            tag = "[INVALID: no entry] " if narrow else "[packet INVALID: no entry attached] "
            out.append(tag, style=f"bold {INK[Tone.INVALID]}")
        confirmed = any(x.why is Why.CONFIRM and x.ns == NsRole.HOST for x in so_far)
        if entry is None and confirmed:
            out.append(
                "entry confirmed by this packet (__nf_conntrack_confirm): conntrack -L lists it "
                "from here; its fields show from the connection's next packet",
                style="dim",
            )
        elif entry is None:
            out.append(
                "no entry yet" + (": a new entry is listed once POSTROUTING confirms it" if ctstate else ""),
                style="dim",
            )
        else:
            # 80x24: one space between fields, and without mark/use, so the tuple and flags fit
            out.append(re.sub(r" mark=\d+ use=\d+$", "", " ".join(entry.split())) if narrow else entry)
        self.update(out, layout=False)
