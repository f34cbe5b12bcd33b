"""Ask for a scenario or case file to open."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from sim.api import builtin_scenarios


class OpenScreen(ModalScreen[str | None]):
    """Returns the path typed (or None on escape)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="open.cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="open-box"):
            yield Label(
                "Open a scenario (.toml/.json), a crafted case (.json, e.g. "
                "sim/scenario/cases/late-ack.json) or a capture (.pcap/.pcapng: its connection "
                "replayed as a case); "
                f"built-in: {', '.join(builtin_scenarios())}"
            )
            yield Input(placeholder="path or built-in name", id="open-path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
