"""Messages between the app and its main screen, as dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tui.model import Cursor, Session


@dataclass
class CursorMoved(Message):
    """Show ``cursor`` of ``session``: every widget re-renders from these two values."""

    session: Session
    cursor: Cursor
    playing: bool = False


@dataclass
class RunChanged(Message):
    """A fix, kernel or file change re-ran the model; ``summary`` says what changed."""

    summary: str
