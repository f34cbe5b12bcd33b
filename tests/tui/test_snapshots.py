"""SVG snapshots of the main states at 120x40 and 80x24.

Expected SVGs live in tests/tui/snapshots/. Regenerate them after an intended change with
``NFLAB_UPDATE_SNAPSHOTS=1 python -m pytest tests/tui/test_snapshots.py`` and look at them
(e.g. ``rsvg-convert FILE.svg -o FILE.png``) before committing. A mismatch writes the actual
SVG next to the expected one as ``NAME.actual.svg``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tui.app import make_app
from tui.model import Session

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("NFLAB_UPDATE_SNAPSHOTS") == "1"

STATES = {
    # name: (size, keys, theme)
    "invalid-120x40": ((120, 40), [], "textual-dark"),
    "invalid-80x24": ((80, 24), [], "textual-dark"),
    "no-socket-120x40": ((120, 40), ["right"] * 6, "textual-dark"),
    "drop-invalid-120x40": ((120, 40), ["f"], "textual-dark"),
    "be-liberal-80x24": ((80, 24), ["f", "f"], "textual-dark"),
    "kernel-6.1-120x40-light": ((120, 40), ["k"], "textual-light"),
    "rst-80x24-light": ((80, 24), ["c"], "textual-light"),
    "help-80x24": ((80, 24), ["question_mark"], "textual-dark"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(STATES))
async def test_snapshot(name: str, run_cache: dict[tuple[str, str, str], Session]) -> None:
    size, keys, theme = STATES[name]
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=size) as pilot:
        app.theme = theme
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        await pilot.pause()
        svg = app.export_screenshot(title=f"nflab {name}")
    expected = SNAPSHOTS / f"{name}.svg"
    actual = SNAPSHOTS / f"{name}.actual.svg"
    if UPDATE or not expected.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        expected.write_text(svg)
        actual.unlink(missing_ok=True)
        if not UPDATE:
            pytest.fail(f"{expected.name} did not exist: written, check it and commit it")
        return
    if svg != expected.read_text():
        actual.write_text(svg)
        pytest.fail(
            f"{name}: screen differs from {expected.name}; see {actual.name} "
            "(NFLAB_UPDATE_SNAPSHOTS=1 to accept)"
        )
    actual.unlink(missing_ok=True)
