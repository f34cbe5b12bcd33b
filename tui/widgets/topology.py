"""The topology strip: container eth0 .. remote, with the packet's position and direction."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from sim.api import format_flags
from tui.rows import STRIP, direction, strip_index, tone
from tui.session import Cursor, Session
from tui.widgets.style import BADGE

_LINKS = ("─veth─", "─", "─", "─", "═wire═")


class TopologyStrip(Static):
    """Two lines: the devices along the path, and an arrow under the current one."""

    def show(self, s: Session, c: Cursor) -> None:
        e = s.event(c)
        here = strip_index(e)
        src, dst = direction(s, e.pid)
        line, marks = Text(" "), Text(" ")
        col = 1
        for i, (_node, label) in enumerate(STRIP):
            style = BADGE[tone(e.verdict)] or "reverse" if i == here else "bold"
            line.append(f" {label} ", style=style)
            if i == here:
                marks.append(" " * (col - len(marks)))
                pkt = e.after or e.before
                what = f"[{format_flags(pkt.flags)}]" if pkt is not None else ""
                marks.append(("◀━ " if dst < src else "━▶ ") + f"packet {e.pid} {what}", style="bold")
            col += len(label) + 2
            if i < len(_LINKS):
                line.append(_LINKS[i], style="dim")
                col += len(_LINKS[i])
        self.update(Text("\n").join([line, marks]), layout=False)
