"""The one main screen: status, topology, journey | why, conntrack, two captures, footer."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from tui.messages import CursorMoved, RunChanged
from tui.widgets.captures import Captures
from tui.widgets.conntrack import ConntrackLine
from tui.widgets.journey import Journey
from tui.widgets.status import ChangeBar, StatusBar
from tui.widgets.topology import TopologyStrip
from tui.widgets.why import WhyPanel

NARROW = 100  # below this many columns the layout goes compact


class MainScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield ChangeBar(id="changes")
        yield TopologyStrip(id="topology")
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

    def on_resize(self) -> None:
        narrow = self.size.width < NARROW
        self.set_class(narrow, "-narrow")
        self.query_one(Footer).show_command_palette = not narrow

    @on(CursorMoved)
    def _moved(self, m: CursorMoved) -> None:
        s, c = m.session, m.cursor
        self.query_one(StatusBar).show(s, c, m.playing)
        self.query_one(TopologyStrip).show(s, c)
        self.query_one(Journey).show(s, c)
        self.query_one(WhyPanel).show(s, c)
        self.query_one(ConntrackLine).show(s, c)
        self.query_one(Captures).show(s, c)

    @on(RunChanged)
    def _changed(self, m: RunChanged) -> None:
        self.query_one(ChangeBar).say(m.summary)
