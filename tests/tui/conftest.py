"""Shared fixtures for the TUI tests: one run per (scenario, kernel, fix) for the whole session."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from tui.session import Session


@pytest.fixture(scope="session")
def run_cache() -> dict[tuple[str, str, str], Session]:
    return {}


def text_of(widget: Any) -> str:
    """What a widget renders, as plain text at its current width."""
    r = widget.render()
    if hasattr(r, "plain"):
        return str(r.plain)
    console = Console(width=max(widget.size.width, 20), file=io.StringIO(), record=True, color_system=None)
    console.print(r)
    return console.export_text()


async def settle(pilot: Any) -> None:
    """Wait for the model's worker (launch or re-run) and the frame after it."""
    from tui.app import until_ready

    await until_ready(pilot.app, pilot)
