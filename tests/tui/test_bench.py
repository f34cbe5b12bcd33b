"""The TUI's wall-time bench drives the real ``nflab tui`` on a pseudo-terminal; here it must find
every frame it waits for (the figures themselves come from ``nflab bench --json``, not tests)."""

from __future__ import annotations

import re

from sim.bench import FIGURES_HELP
from tui.bench import measure, plain


def test_plain_strips_escape_sequences() -> None:
    assert plain(b"\x1b[1;38;5;231mpacket \x1b[0m\x1b[12;3H561\x1b[?2026l") == "packet 561"


def test_the_bench_sees_every_frame_it_waits_for() -> None:
    figures = measure()
    assert set(figures) == {
        "tui_first_frame_s",
        "tui_story_frame_s",
        "tui_key_to_frame_ms",
        "tui_key_to_frame_median_ms",
        "tui_rerun_s",
    }
    assert set(figures) <= set(re.findall(r"^  (\w+) ", FIGURES_HELP, re.M))  # bench --help
    assert 0 < figures["tui_first_frame_s"] <= figures["tui_story_frame_s"]
    assert 0 < figures["tui_key_to_frame_median_ms"] <= figures["tui_key_to_frame_ms"]
