"""Drive the app with keys and check what the screen shows at each key step of the incident."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.conftest import text_of
from tui.app import NflabApp, make_app
from tui.model import Session
from tui.screens.help import HelpScreen
from tui.screens.open_file import OpenScreen
from tui.widgets.captures import CapturePane
from tui.widgets.journey import Journey
from tui.widgets.status import ChangeBar, StatusBar
from tui.widgets.why import WhyPanel

CASES = Path(__file__).resolve().parents[2] / "sim" / "scenario" / "cases"
Cache = dict[tuple[str, str, str], Session]


def screen_text(app: NflabApp) -> dict[str, str]:
    s = app.screen_main
    why = s.query_one(WhyPanel)
    return {
        "status": text_of(s.query_one(StatusBar)),
        "journey": text_of(s.query_one(Journey)),
        "why": why.text(why.size.width).plain,
        "conntrack": text_of(s.query_one("#conntrack")),
        "host": text_of(s.query_one("#cap-host", CapturePane)),
        "ctr": text_of(s.query_one("#cap-ctr", CapturePane)),
        "changes": text_of(s.query_one(ChangeBar)) if s.query_one(ChangeBar).display else "",
    }


def current_row(journey: str) -> str:
    return next(line for line in journey.splitlines() if "▶" in line)


@pytest.mark.asyncio
async def test_the_incident_step_by_step(run_cache: Cache) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        t = screen_text(app)
        # opens on the late ACK at the host's conntrack hook: INVALID with bound IV failed
        assert "PREROUTING -200" in current_row(t["journey"]) and "INVALID" in current_row(t["journey"])
        assert "bound IV fails" in t["why"]
        assert "IV  sack >= rcv.td_end - MAXACKWIN(snd)" in t["why"]  # the formula, short at this width
        assert "FAIL" in t["why"].split("IV  ")[1].splitlines()[1]  # the limit/packet line of bound IV
        assert all("pass" in t["why"].split(f"{b:<4}")[1].splitlines()[1] for b in ("I", "II", "III"))
        assert "td_maxwin" in t["why"] and "td_scale" in t["why"]
        assert "packet INVALID: no entry attached" in t["conntrack"] and "ESTABLISHED" in t["conntrack"]
        assert "[R]" in t["host"] and "[R]" not in t["ctr"] and "never seen here" in t["ctr"]
        assert "kernel 3.10" in t["status"] and "fix none" in t["status"] and "FAILED" in t["status"]
        seen = []
        for _ in range(7):
            await pilot.press("right")
            seen.append(current_row(screen_text(app)["journey"]))
        assert any("PREROUTING -100" in r and "SKIP" in r for r in seen)  # NAT skipped
        assert any("route" in r and "LOCAL" in r for r in seen)
        assert any("socket" in r and "NO_SOCKET" in r for r in seen)
        assert "RST" in seen[-1]
        why = screen_text(app)["why"]
        assert "never sees it" in why
        # backwards is the same path
        for _ in range(7):
            await pilot.press("left")
        assert "PREROUTING -200" in current_row(screen_text(app)["journey"])
        # follow the RST: it leaves the host's eth0; the container's pane never shows it
        await pilot.press("c")
        t = screen_text(app)
        assert "[R]" in t["journey"].splitlines()[0]
        assert "never seen here" in t["ctr"]


@pytest.mark.asyncio
@pytest.mark.parametrize("presses,fix", [(1, "drop-invalid"), (2, "be-liberal")])
async def test_each_fix_reruns_and_removes_the_rst(run_cache: Cache, presses: int, fix: str) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for _ in range(presses):
            await pilot.press("f")
        t = screen_text(app)
        assert f"fix {fix}" in t["status"] and "COMPLETE" in t["status"]
        assert "no host RST" in t["changes"] and "runs first diverge at 0.560000s" in t["changes"]
        assert "0 RST" in app.screen_main.query_one("#cap-host", CapturePane).border_title
        assert "[R]" not in t["host"]
        row = current_row(t["journey"])
        assert ("DROP" in row) if fix == "drop-invalid" else ("PREROUTING -200" in row and "ACCEPT" in row)


@pytest.mark.asyncio
async def test_kernel_61_ignores_then_next_invalid_finds_bound_i(run_cache: Cache) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("k")
        t = screen_text(app)
        assert "kernel 6.1" in t["status"] and "diverge" in t["changes"]
        assert "IGNORE" in current_row(t["journey"])
        await pilot.press("i")
        t = screen_text(app)
        assert "INVALID" in current_row(t["journey"])
        first = t["why"].split("I   ")[1].splitlines()
        assert "FAIL" in first[1]  # bound I: SEQ over the upper bound


@pytest.mark.asyncio
async def test_help_open_and_palette(run_cache: Cache) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("o")
        assert isinstance(app.screen, OpenScreen)
        await pilot.press(*str(CASES / "late-ack.json"))
        await pilot.press("enter")
        await pilot.pause()
        assert app.session is not None and app.session.source.kind == "case"
        t = screen_text(app)
        assert "late-ack" in t["status"] and "IGNORE" in current_row(t["journey"])
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in (
            "Next step",
            "Previous packet",
            "Jump to next INVALID",
            "Fix: be-liberal",
            "Kernel: 6.1",
            "Open scenario file",
            "Help",
            "Play / pause",
        ):
            assert wanted in titles


@pytest.mark.asyncio
async def test_play_advances_and_pauses(run_cache: Cache) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        start = app.cursor
        await pilot.press("space")
        assert "PLAYING" in screen_text(app)["status"]
        await pilot.pause(0.9)
        await pilot.press("space")
        assert app.cursor != start and app.playing is None


def test_make_app_fails_early_on_a_missing_file(tmp_path: Path) -> None:
    from tui.app import main

    assert main(str(tmp_path / "nope.toml"), None, "none") == 2
