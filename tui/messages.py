"""Messages between the app and its main screen, and from widgets to the app, as dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from tui.quiz import Quiz
    from tui.session import Cursor, Session


@dataclass
class CursorMoved(Message):
    """Show ``cursor`` of ``session``: every widget re-renders from these values. ``quiz`` is the
    quiz on screen and whether its current answer is revealed."""

    session: Session
    cursor: Cursor
    playing: bool = False
    quiz: tuple[Quiz, bool] | None = None


@dataclass
class RunChanged(Message):
    """A fix, kernel or file change re-ran the model; ``summary`` says what changed."""

    summary: str


@dataclass
class Clicked(Message):
    """A journey row or capture line was clicked: go to ``cursor``."""

    cursor: Cursor
