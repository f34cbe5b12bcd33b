"""SVG snapshots of the main states at 120x40 and 80x24, with pytest-textual-snapshot.

Expected SVGs live in tests/tui/__snapshots__/. After an intended change regenerate them with
``python -m pytest tests/tui/test_snapshots.py --snapshot-update`` and look at them (e.g.
``rsvg-convert FILE.svg -o FILE.png``) before committing; a failing run writes
``snapshot_report.html`` with both screens side by side.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.tui.conftest import settle
from tui.app import make_app
from tui.session import Session

STATES = {
    # name: (size, keys, theme)
    "invalid-120x40": ((120, 40), [], "textual-dark"),
    "invalid-80x24": ((80, 24), [], "textual-dark"),
    "no-socket-120x40": ((120, 40), ["right"] * 6, "textual-dark"),
    "drop-invalid-120x40": ((120, 40), ["f", "right", "right", "right", "right"], "textual-dark"),
    "be-liberal-80x24": ((80, 24), ["f", "f"], "textual-dark"),
    # k cycles PROFILES oldest first: 3.10 -> el7 -> 4.19 -> 5.10 -> 5.15 -> 6.1
    "kernel-6.1-120x40-light": ((120, 40), ["k"] * 5, "textual-light"),
    "kernel-6.1-80x24": ((80, 24), ["k"] * 5, "textual-dark"),
    "rst-80x24-light": ((80, 24), ["c"], "textual-light"),
    "rst-output-120x40": ((120, 40), ["c", "right"], "textual-dark"),
    "quiz-80x24": ((80, 24), ["z", "1"], "textual-dark"),
    "quiz-120x40": ((120, 40), ["z"], "textual-dark"),
    "help-80x24": ((80, 24), ["question_mark"], "textual-dark"),
}


@pytest.mark.parametrize("name", sorted(STATES))
def test_snapshot(name: str, snap_compare: Any, run_cache: dict[tuple[str, str, str], Session]) -> None:
    size, keys, theme = STATES[name]
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)

    async def run_before(pilot: Any) -> None:
        pilot.app.theme = theme
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
