"""The top bar: what is loaded, its outcome, where the cursor is, and what the last re-run changed."""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

from tui.rows import Tone
from tui.session import Cursor, Session
from tui.widgets.style import markup_badge


def release(kernel: str) -> str:
    """The profile's release in a few words ("CentOS/RHEL 7 (3.10.0-1160.el7)")."""
    from sim.api import PROFILES

    return PROFILES[kernel].description.split(":")[0] if kernel in PROFILES else kernel


class StatusBar(Static):
    """Scenario, kernel, fix and outcome; then the cursor's packet, step and time. Laid out for
    its width when it renders, so a resize never leaves the wide form cut off."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._state: tuple[Session, Cursor, bool, bool] | None = None
        self._busy: str | None = None

    def show(self, s: Session, c: Cursor, playing: bool, quiz: bool = False) -> None:
        """``quiz``: a question is open; the outcome and the RST count would answer it."""
        self._state = (s, c, playing, quiz)
        self.refresh()

    def busy(self, what: str | None) -> None:
        self._busy = what
        self.refresh()

    def render(self) -> str:
        if self._state is None:
            return f"[b]nflab[/]  {escape(self._busy or '')}"
        s, c, playing, quiz = self._state
        e = s.event(c)
        if s.story is not None:
            failed = not s.story.succeeded
            outcome = markup_badge("FAILS" if failed else "SUCCEEDS", Tone.DROP if failed else Tone.ACCEPT)
        elif s.run is not None:
            failed = not s.run.completed
            outcome = markup_badge("FAILED" if failed else "COMPLETE", Tone.DROP if failed else Tone.ACCEPT)
        else:
            outcome = "[dim]crafted case[/]"
        if quiz:
            outcome = "[dim]quiz: outcome hidden[/]"
        n = len(s.steps[s.pids[c.packet]])
        busy = f"  [b reverse] {escape(self._busy)} [/]" if self._busy else ""
        if self.size.width < 100:
            rsts = f"{len(s.rst_pids)} RST " if s.run is not None and not quiz else ""
            return (
                f"[b]{escape(s.title)}[/] kernel [b]{s.kernel}[/] {s.fix} {outcome} {rsts}"
                f"pkt [b]{e.pid}[/] step [b]{c.step + 1}/{n}[/] [b]{e.t:.6f}s[/]"
                + (" [b reverse] PLAY [/]" if playing else "")
                + busy
            )
        return (
            f"[b]{escape(s.title)}[/]  kernel [b]{s.kernel}[/]  fix [b]{s.fix}[/]  {outcome} "
            f"{'' if quiz else escape(s.outcome)}\n"
            f"packet [b]{e.pid}[/] ({c.packet + 1}/{len(s.pids)})  step [b]{c.step + 1}/{n}[/]  "
            f"t [b]{e.t:.6f}s[/]"
            + ("  [b reverse] PLAYING [/]" if playing else "")
            + busy
            + ("" if self._busy else f"  [dim]kernel {s.kernel}: {escape(release(s.kernel))}[/]")
        )


class ChangeBar(Static):
    """What the last fix or kernel switch changed; hidden until the first re-run."""

    def say(self, text: str) -> None:
        self.update(escape(text))
        self.display = bool(text)
