"""The nflab walkthrough app: ``make_app()`` builds it (tests reuse it), ``main()`` runs it.

The app holds the state (the indexed run and a cursor); the main screen only renders it.
Every fix or kernel change re-runs the model through ``tui.model.open_session`` and says what
changed and where the two runs first diverge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer

from sim.scenario.fixes import FIXES
from tui.messages import CursorMoved, RunChanged
from tui.model import (
    DEFAULT_SCENARIO,
    KERNELS,
    Cursor,
    Session,
    SourceError,
    cycle,
    describe_change,
    follow,
    next_invalid,
    next_packet,
    next_step,
    open_session,
    prev_packet,
    prev_step,
)
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.open_file import OpenScreen
from tui.widgets.why import WhyPanel

STEP = Binding.Group("step", compact=True)
PACKET = Binding.Group("pkt", compact=True)
PLAY_INTERVAL = 0.4


class NflabApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "nflab"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "prev_step", "step", id="step.prev", group=STEP, key_display="←"),
        Binding("right", "next_step", "step", id="step.next", group=STEP, key_display="→"),
        Binding("up", "prev_packet", "pkt", id="packet.prev", group=PACKET, key_display="↑"),
        Binding("down", "next_packet", "pkt", id="packet.next", group=PACKET, key_display="↓"),
        Binding("space", "play", "play", id="play", key_display="spc"),
        Binding("i", "next_invalid", "INVALID", id="invalid.next"),
        Binding("f", "cycle_fix", "fix", id="fix.cycle"),
        Binding("k", "cycle_kernel", "kernel", id="kernel.cycle"),
        Binding("o", "open", "open", id="open"),
        Binding("question_mark,f1", "help", "help", id="help", key_display="?"),
        Binding("q", "quit", "quit", id="quit"),
        Binding("c", "follow", "follow RST", id="follow", show=False),
        Binding("home", "focus_story", "story", id="story", show=False),
        Binding("pagedown", "why_scroll(4)", "why down", id="why.down", show=False),
        Binding("pageup", "why_scroll(-4)", "why up", id="why.up", show=False),
    ]

    def __init__(
        self,
        ref: str = DEFAULT_SCENARIO,
        kernel: str | None = None,
        fix: str | None = None,
        cache: dict[tuple[str, str, str], Session] | None = None,
    ) -> None:
        super().__init__()
        self.ref, self.kernel, self.fix = ref, kernel, fix
        self.session: Session | None = None
        self.cursor = Cursor(0, 0)
        self.playing: Timer | None = None
        self._cache: dict[tuple[str, str, str], Session] = {} if cache is None else cache

    # -- state --------------------------------------------------------------------

    def load(self, ref: str, kernel: str | None, fix: str | None) -> Session:
        key = (ref, kernel or "", fix or "")
        if key not in self._cache:
            s = open_session(ref, kernel, fix)
            self._cache[key] = s
            self._cache[(ref, s.kernel, s.fix)] = s
        return self._cache[key]

    def get_default_screen(self) -> Screen[None]:
        return MainScreen()

    def on_mount(self) -> None:
        self.session = self.load(self.ref, self.kernel, self.fix)
        self.kernel, self.fix = self.session.kernel, self.session.fix
        self.cursor = Cursor(*self.session.focus)
        self.sub_title = self.session.title
        self.show()

    def show(self) -> None:
        if self.session is not None:
            self.screen_main.post_message(CursorMoved(self.session, self.cursor, self.playing is not None))

    @property
    def screen_main(self) -> MainScreen:
        return next(s for s in self.screen_stack if isinstance(s, MainScreen))

    def move(self, cursor: Cursor) -> None:
        if cursor != self.cursor:
            self.cursor = cursor
            self.show()

    # -- actions ------------------------------------------------------------------

    def action_next_step(self) -> None:
        assert self.session is not None
        self.move(next_step(self.session, self.cursor))

    def action_prev_step(self) -> None:
        assert self.session is not None
        self.move(prev_step(self.session, self.cursor))

    def action_next_packet(self) -> None:
        assert self.session is not None
        self.move(next_packet(self.session, self.cursor))

    def action_prev_packet(self) -> None:
        assert self.session is not None
        self.move(prev_packet(self.session, self.cursor))

    def action_next_invalid(self) -> None:
        assert self.session is not None
        cur, wrapped = next_invalid(self.session, self.cursor)
        if cur == self.cursor and not self.session.invalid:
            self.notify("no INVALID packet in this run", timeout=3)
        elif wrapped:
            self.notify("no INVALID after this one: back to the first", timeout=3)
        self.move(cur)

    def action_follow(self) -> None:
        assert self.session is not None
        cur = follow(self.session, self.cursor)
        if cur is None:
            self.notify("this packet caused nothing and has no cause", timeout=3)
        else:
            self.move(cur)

    def action_focus_story(self) -> None:
        assert self.session is not None
        self.move(Cursor(*self.session.focus))

    def action_why_scroll(self, n: int) -> None:
        self.screen_main.query_one(WhyPanel).scroll_lines(n)

    def action_play(self) -> None:
        if self.playing is None:
            self.playing = self.set_interval(PLAY_INTERVAL, self.action_next_step)
        else:
            self.playing.stop()
            self.playing = None
        self.show()

    def rerun(self, ref: str, kernel: str | None, fix: str | None, what: str) -> bool:
        old = self.session
        try:
            new = self.load(ref, kernel, fix)
        except SourceError as e:
            self.notify(str(e), severity="error", timeout=8)
            return False
        self.ref, self.kernel, self.fix, self.session = ref, new.kernel, new.fix, new
        self.sub_title = new.title
        cursor: Cursor | None = None
        if old is not None and old.source == new.source:
            summary, cursor = describe_change(old, new, what)
        else:
            summary = f"{what}: {new.outcome}"
        self.cursor = cursor or Cursor(*new.focus)
        self.screen_main.post_message(RunChanged(summary))
        self.show()
        return True

    def action_cycle_fix(self) -> None:
        fix = cycle(FIXES, self.fix or "none")
        self.rerun(self.ref, self.kernel, fix, f"fix {fix}")

    def action_cycle_kernel(self) -> None:
        kernel = cycle(KERNELS, self.kernel or KERNELS[0])
        self.rerun(self.ref, kernel, self.fix, f"kernel {kernel}")

    def set_fix(self, fix: str) -> None:
        self.rerun(self.ref, self.kernel, fix, f"fix {fix}")

    def set_kernel(self, kernel: str) -> None:
        self.rerun(self.ref, kernel, self.fix, f"kernel {kernel}")

    def open_ref(self, ref: str | None) -> None:
        if ref:
            self.rerun(ref, None, None, f"opened {ref}")

    def action_open(self) -> None:
        self.push_screen(OpenScreen(), self.open_ref)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:  # type: ignore[type-arg]
        yield from super().get_system_commands(screen)
        yield SystemCommand("Next step", "Move to the packet's next step", self.action_next_step)
        yield SystemCommand("Previous step", "Move to the previous step", self.action_prev_step)
        yield SystemCommand("Next packet", "Move to the next packet", self.action_next_packet)
        yield SystemCommand("Previous packet", "Move to the previous packet", self.action_prev_packet)
        yield SystemCommand("Play / pause", "Step automatically", self.action_play)
        yield SystemCommand(
            "Jump to next INVALID", "The next packet conntrack calls INVALID", self.action_next_invalid
        )
        yield SystemCommand(
            "Follow cause / RST", "To the packet this one caused, or its cause", self.action_follow
        )
        yield SystemCommand(
            "Back to the story", "The first IGNORE/INVALID packet at the host", self.action_focus_story
        )
        for fix in FIXES:
            yield SystemCommand(
                f"Fix: {fix}", f"Re-run with fix {fix} and say what changed", lambda f=fix: self.set_fix(f)
            )
        for kernel in KERNELS:
            yield SystemCommand(
                f"Kernel: {kernel}",
                f"Re-run on kernel {kernel} and say what changed",
                lambda k=kernel: self.set_kernel(k),
            )
        yield SystemCommand("Open scenario file", "A scenario or crafted case file", self.action_open)
        yield SystemCommand("Help", "The story, the colours and the keys", self.action_help)


def make_app(
    scenario: str | None = None,
    kernel: str | None = None,
    fix: str | None = None,
    *,
    cache: dict[tuple[str, str, str], Session] | None = None,
) -> NflabApp:
    """The app on ``scenario`` (built-in name, scenario file or case file; default the seed
    incident), with ``kernel``/``fix`` overriding what the file says. Raises SourceError early.
    ``cache`` shares runs between apps (the tests run each scenario once)."""
    ref = scenario or DEFAULT_SCENARIO
    app = NflabApp(ref, kernel, fix, cache)
    app.load(ref, kernel, fix)  # fail before the terminal switches modes, and warm the cache
    return app


def main(argv_scenario: str | None, kernel: str | None, fix: str) -> int:
    """``nflab`` (no args: the seed incident) and ``nflab tui FILE``. ``kernel`` None keeps the
    file's kernel; ``fix`` overrides the file's fix ("" or None keeps it). Returns the exit status:
    0, or 2 with a one-line message on stderr when the file cannot be opened."""
    import sys

    try:
        app = make_app(argv_scenario, kernel, None if fix in (None, "") else fix)
    except SourceError as e:
        print(f"nflab tui: {e}", file=sys.stderr)
        return 2
    app.run()
    return 0
