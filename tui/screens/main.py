"""The one main screen: status, changes, topology, quiz, journey | why, conntrack, two captures."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from tui.messages import Clicked, CursorMoved, RunChanged
from tui.widgets.captures import Captures
from tui.widgets.conntrack import ConntrackLine
from tui.widgets.journey import Journey
from tui.widgets.quiz import QuizBar
from tui.widgets.status import ChangeBar, StatusBar
from tui.widgets.topology import TopologyStrip
from tui.widgets.why import WhyPanel

NARROW = 100  # below this many columns the layout goes compact


class MainScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield ChangeBar(id="changes")
        yield TopologyStrip(id="topology")
        yield QuizBar(id="quiz")
        with Horizontal(id="middle"):
            yield Journey(id="journey")
            yield WhyPanel(id="why")
        yield ConntrackLine(id="conntrack")
        yield Captures(id="captures")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#journey").border_title = "journey"
        self.query_one("#why").border_title = "why"
        self.query_one("#conntrack").border_title = "conntrack -L"
        self.query_one(ChangeBar).display = False
        self.query_one(QuizBar).display = False
        self._narrow(self.app.size.width)
        self.app.screen_ready()  # type: ignore[attr-defined]

    def _narrow(self, width: int) -> None:
        narrow = width < NARROW
        self.set_class(narrow, "-narrow")
        footer = self.query_one(Footer)
        if footer.show_command_palette == narrow:
            footer.show_command_palette = not narrow
            footer.refresh(recompose=True)

    def on_resize(self) -> None:
        self._narrow(self.size.width)
        # re-render every widget at its new size once the layout has settled
        self.call_after_refresh(self.app.show)  # type: ignore[attr-defined]

    @on(CursorMoved)
    def _moved(self, m: CursorMoved) -> None:
        s, c = m.session, m.cursor
        hide = m.quiz is not None and not m.quiz[1]  # a question is open: show nothing after the cursor
        self.query_one(StatusBar).show(s, c, m.playing, hide)
        self.query_one(TopologyStrip).show(s, c)
        self.query_one(QuizBar).show(m.quiz)
        self.query_one(Journey).show(s, c, hide)
        self.query_one(WhyPanel).show(s, c, hide)
        self.query_one(ConntrackLine).show(s, c)
        self.query_one(Captures).show(s, c, hide)

    @on(RunChanged)
    def _changed(self, m: RunChanged) -> None:
        if self.has_class("-narrow"):  # no room for a banner above the journey: the why panel says it
            self.query_one(ChangeBar).say("")
            self.query_one(WhyPanel).note(m.summary)
        else:
            self.query_one(ChangeBar).say(m.summary)

    def busy(self, what: str | None) -> None:
        """The model is running (``what`` says what: a spinner over the middle) or has finished."""
        self.query_one("#middle").loading = what is not None
        self.query_one(StatusBar).busy(what)

    @on(Clicked)
    def _clicked(self, m: Clicked) -> None:
        self.app.goto(m.cursor)  # type: ignore[attr-defined]
