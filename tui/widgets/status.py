"""The top bar: what is loaded, its outcome, where the cursor is, and what the last re-run changed."""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

from tui.model import Cursor, Session, Tone
from tui.widgets.style import markup_badge


class StatusBar(Static):
    """Scenario, kernel, fix and outcome; then the cursor's packet, step and time."""

    def show(self, s: Session, c: Cursor, playing: bool) -> None:
        e = s.event(c)
        failed = s.run is not None and not s.run.completed
        outcome = markup_badge("FAILED" if failed else "COMPLETE", Tone.DROP if failed else Tone.ACCEPT)
        if s.run is None:
            outcome = "[dim]crafted case[/]"
        n = len(s.steps[s.pids[c.packet]])
        if self.size.width and self.size.width < 100:
            rsts = f"{len(s.rst_pids)} RST" if s.run is not None else ""
            self.update(
                f"[b]{escape(s.title)}[/] {s.kernel} {s.fix} {outcome} {rsts}  "
                f"pkt [b]{e.pid}[/] step [b]{c.step + 1}/{n}[/] [b]{e.t:.6f}s[/]"
                + (" [b reverse] PLAY [/]" if playing else ""),
                layout=False,
            )
            return
        self.update(
            f"[b]{escape(s.title)}[/]  kernel [b]{s.kernel}[/]  fix [b]{s.fix}[/]  {outcome} "
            f"{escape(s.outcome)}\n"
            f"packet [b]{e.pid}[/] ({c.packet + 1}/{len(s.pids)})  step [b]{c.step + 1}/{n}[/]  "
            f"t [b]{e.t:.6f}s[/]" + ("  [b reverse] PLAYING [/]" if playing else ""),
            layout=False,
        )


class ChangeBar(Static):
    """What the last fix or kernel switch changed; hidden until the first re-run."""

    def say(self, text: str) -> None:
        self.update(escape(text))
        self.display = bool(text)
