"""The topology strip: container eth0 .. remote, with the packet's position and direction."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from sim.api import Step, format_flags
from tui.rows import STRIP, direction, strip_index, tone
from tui.session import Cursor, Session
from tui.widgets.style import BADGE

_LINKS = ("─veth─", "─", "─", "─", "═wire═")


class TopologyStrip(Static):
    """Two lines: the devices along the path, and an arrow under the current one."""

    def show(self, s: Session, c: Cursor) -> None:
        e = s.event(c)
        here = strip_index(e)
        pid, pkt = e.pid, e.after or e.before
        if e.step is Step.RST and s.pids_caused.get(e.pid):  # the RST this step sends, not its cause
            pid = s.pids_caused[e.pid][0]
            pkt = s.packet_events(s.pos[pid])[0].before
        src, dst = direction(s, pid)
        left = dst < src
        what = f"[{format_flags(pkt.flags)}]" if pkt is not None else ""
        label = ("◀━ " if left else "━▶ ") + f"packet {pid} {what}"
        if e.step is Step.RST:
            label += f" (the host's answer to packet {e.pid})"
        one_line = self.size.height == 1
        line, marks = Text(" "), Text(" ")
        col = 1
        for i, (_node, name) in enumerate(STRIP):
            style = BADGE[tone(e.verdict)] or "reverse" if i == here else "bold"
            if i == here and one_line:  # 80x24: the arrow rides on the current node
                name = f"◀{name}" if left else f"{name}▶"
            line.append(f" {name} ", style=style)
            if i == here:
                marks.append(" " * (col - len(marks)))
                marks.append(label, style="bold")
            col += len(name) + 2
            if i < len(_LINKS):
                line.append(_LINKS[i], style="dim")
                col += len(_LINKS[i])
        self.update(line if one_line else Text("\n").join([line, marks]), layout=False)
