"""Drive the app with keys and clicks and check what the screen shows, at 120x40 and 80x24."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from sim.netfilter.profiles import PROFILES
from tests.tui.conftest import settle, text_of
from tui.app import NflabApp, main, make_app
from tui.screens.help import HelpScreen
from tui.screens.open_file import OpenScreen
from tui.screens.quiz import QuizResult
from tui.session import Cursor, Session, plan
from tui.widgets.captures import CapturePane
from tui.widgets.journey import Journey
from tui.widgets.quiz import QuizBar
from tui.widgets.status import ChangeBar, StatusBar
from tui.widgets.topology import TopologyStrip
from tui.widgets.why import WhyPanel

CASES = Path(__file__).resolve().parents[2] / "sim" / "scenario" / "cases"
Cache = dict[tuple[str, str, str], Session]
SIZES = [(120, 40), (80, 24)]


def screen_text(app: NflabApp) -> dict[str, str]:
    s = app.screen_main
    why = s.query_one(WhyPanel)
    return {
        "status": text_of(s.query_one(StatusBar)),
        "topology": text_of(s.query_one(TopologyStrip)),
        "journey": text_of(s.query_one(Journey)),
        "why": why.text(why.size.width).plain,
        "why_shown": text_of(why),
        "conntrack": text_of(s.query_one("#conntrack")),
        "host": text_of(s.query_one("#cap-host", CapturePane)),
        "ctr": text_of(s.query_one("#cap-ctr", CapturePane)),
        "changes": text_of(s.query_one(ChangeBar)) if s.query_one(ChangeBar).display else "",
        "quiz": text_of(s.query_one(QuizBar)) if s.query_one(QuizBar).display else "",
    }


def current_row(journey: str) -> str:
    return next(line for line in journey.splitlines() if "▶" in line)


@pytest.mark.asyncio
@pytest.mark.parametrize("size", SIZES)
async def test_the_incident_step_by_step(run_cache: Cache, size: tuple[int, int]) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        t = screen_text(app)
        # opens on the late ACK at the host's conntrack hook, INVALID; the words come first, with
        # the failing bound's numbers, on screen at both sizes
        assert "-200" in current_row(t["journey"]) and "INVALID" in current_row(t["journey"])
        shown = " ".join(t["why_shown"].split())
        assert "Out of window: this ACK acknowledges data 530,308 bytes older" in shown
        assert "IV  sack >= rcv.td_end - MAXACKWIN(snd)" in t["why"]  # the formula, below the words
        assert "INVALID: no entry" in t["conntrack"] and "ESTABLISHED" in t["conntrack"]
        assert "[R]" in t["host"] and "[R]" not in t["ctr"] and "never seen here" in t["ctr"]
        # from the remote toward the host: at 80x24 the arrow rides on the node, in one line
        assert ("◀━ packet 561 [A]" if size == (120, 40) else "◀host stack") in t["topology"]
        assert "561" in t["status"] and "4/11" in t["status"]
        seen = []
        for _ in range(7):
            await pilot.press("right")
            seen.append(current_row(screen_text(app)["journey"]))
        assert any("-100" in r and "SKIP" in r for r in seen)  # NAT skipped
        assert any("route" in r and "LOCAL" in r for r in seen)
        assert any("INPUT rule 1 LOG" in r for r in seen)  # the LOG line names its rule
        assert any("socket" in r and "NO_SOCKET" in r for r in seen)
        assert "RST" in seen[-1]
        # the RST step: the arrow shows the RST leaving toward the remote, not the late ACK coming in
        topology = screen_text(app)["topology"]
        assert ("━▶ packet 1232 [R]" if size == (120, 40) else "host stack▶") in topology
        assert "◀" not in topology
        assert "never sees it" in screen_text(app)["why"]
        for _ in range(7):
            await pilot.press("left")
        assert "-200" in current_row(screen_text(app)["journey"])
        # follow the RST: it goes out toward the remote; the container's pane never shows it
        await pilot.press("c")
        t = screen_text(app)
        assert "[R]" in t["journey"].splitlines()[0]
        assert ("━▶ packet 1232 [R]" if size == (120, 40) else "host stack▶") in t["topology"]
        assert "never seen here" in t["ctr"]
        # the RST at OUTPUT conntrack: INVALID, and why there is no log line
        await pilot.press("right")
        assert "a RST cannot open a new connection" in screen_text(app)["why"]
        await pilot.press("right")
        assert "from the host's own address, so nothing needed rewriting" in screen_text(app)["why"]
        # its delivery at the remote names the socket, not a Python object
        for _ in range(7):
            await pilot.press("right")
        why = screen_text(app)["why"]
        assert "object at 0x" not in why and "to the socket 36.110.213.207:443 <-> 10.21.17.99:39700" in why


@pytest.mark.asyncio
@pytest.mark.parametrize("size", SIZES)
async def test_verdicts_line_up(run_cache: Cache, size: tuple[int, int]) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        rows = [
            line for line in screen_text(app)["journey"].splitlines() if re.match(r"\s{0,2}▶?\d{1,2} ", line)
        ]
        words = ("SEND", "XMIT", "RECV", "INVALID", "SKIP", "LOCAL", "LOG", "ACCEPT", "NO_SOCKET", "RST")
        cols = {line.rindex(next(w for w in words if line.rstrip().endswith(w))) for line in rows}
        assert len(rows) >= 6 and len(cols) == 1, rows


@pytest.mark.asyncio
@pytest.mark.parametrize(("presses", "fix"), [(1, "drop-invalid"), (2, "be-liberal")])
async def test_each_fix_reruns_and_goes_to_the_decisive_packet(
    run_cache: Cache, presses: int, fix: str
) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("right", "right", "down")  # wander off the story first
        for _ in range(presses):
            await pilot.press("f")
            await settle(pilot)
        t = screen_text(app)
        assert f"fix {fix}" in t["status"] and "COMPLETE" in t["status"]
        assert "no host RST" in t["changes"] and "runs first diverge at 0.560000s" in t["changes"]
        assert "0 RST" in app.screen_main.query_one("#cap-host", CapturePane).border_title
        assert "561" in t["status"] and "step 4/" in t["status"]  # back on the late ACK's conntrack step
        row = current_row(t["journey"])
        if fix == "drop-invalid":
            assert "INVALID" in row
            await pilot.press("right", "right", "right", "right")
            t = screen_text(app)
            assert "DROP" in current_row(t["journey"])
            assert "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP" in t["why"]
        else:
            assert "ACCEPT" in row and "be_liberal overrides the failed bound" in t["why"]


@pytest.mark.asyncio
async def test_kernel_cycles_every_profile_and_home_follows(run_cache: Cache) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        kernels = list(PROFILES)
        start = kernels.index("3.10")
        nxt = kernels[(start + 1) % len(kernels)]
        await pilot.press("k")
        await settle(pilot)
        t = screen_text(app)
        assert app.kernel == nxt and f"kernel {nxt} ({PROFILES[nxt].description})" in t["changes"]
        if nxt == "6.1":  # the late ACK is ignored: the story is the first INVALID, bound I
            assert "INVALID" in current_row(t["journey"]) and "(bound I)." in t["why"]
        story = app.cursor
        await pilot.press("up", "up")
        await pilot.press("home")
        assert app.cursor == story
        for _ in range(len(kernels) - 1):
            await pilot.press("k")
            await settle(pilot)
        assert app.kernel == "3.10"


@pytest.mark.asyncio
async def test_a_rerun_shows_a_spinner_at_once() -> None:
    app = make_app("seed-incident", "3.10", "none", cache={})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        before = app.cursor
        app.action_cycle_fix()  # what the f key does; not cached: the model runs in a worker
        assert app.screen_main.query_one("#middle").loading and not app.ready
        assert "running seed-incident on kernel 3.10 with fix drop-invalid" in screen_text(app)["status"]
        app.action_next_step()  # a step key meanwhile waits for the new run (not on the old one)
        assert app.cursor == before and len(app.pending) == 1
        await settle(pilot)
        assert not app.screen_main.query_one("#middle").loading and app.fix == "drop-invalid"


@pytest.mark.asyncio
async def test_play_follows_the_late_ack_to_its_rst_and_stops(run_cache: Cache) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("space")
        assert "PLAYING" in screen_text(app)["status"]
        for _ in range(60):
            await pilot.pause(0.1)
            if app.playing is None:
                break
        assert app.playing is None
        assert app.session is not None and app.session.pids[app.cursor.packet] == 1232  # the RST
        assert "remote" in current_row(screen_text(app)["journey"])


@pytest.mark.asyncio
async def test_clicks_move_the_cursor(run_cache: Cache) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        journey = app.screen_main.query_one(Journey)
        y = journey._rows.index(9)  # the socket step (10th) on screen
        await pilot.click(Journey, offset=(6, 1 + y))
        assert app.cursor.step == 9 and "NO_SOCKET" in current_row(screen_text(app)["journey"])
        pane = app.screen_main.query_one("#cap-host", CapturePane)
        y = pane._lines.index(1232)  # the RST's line in the host capture
        await pilot.click("#cap-host", offset=(4, 1 + y))
        assert app.session is not None and app.session.pids[app.cursor.packet] == 1232


@pytest.mark.asyncio
async def test_resize_relays_out_at_once(run_cache: Cache) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert "kernel 3.10" in screen_text(app)["status"]
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        status = screen_text(app)["status"]
        assert "fix none" not in status  # the compact form, not the wide one cut off
        assert "pkt 561 step 4/11" in status
        await pilot.press("f")
        await settle(pilot)
        # at 80x24 no banner takes rows from the journey: what changed is a toast
        assert not app.screen_main.query_one(ChangeBar).display
        assert screen_text(app)["why_shown"].startswith("fix drop-invalid")  # the why panel says it
        await pilot.resize_terminal(120, 40)
        await pilot.press("f")
        await settle(pilot)
        bar = app.screen_main.query_one(ChangeBar)
        assert bar.size.height >= len(text_of(bar).rstrip().splitlines())  # the whole message shows


@pytest.mark.asyncio
async def test_help_open_and_palette_back_to_the_seed(run_cache: Cache) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("o")
        assert isinstance(app.screen, OpenScreen)
        await pilot.press(*str(CASES / "late-ack.json"))
        await pilot.press("enter")
        await settle(pilot)
        assert app.session is not None and app.session.source.kind == "case"
        t = screen_text(app)
        assert "late-ack" in t["status"] and "IGNORE" in current_row(t["journey"])
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for wanted in ("Next step", "Jump to next INVALID", "Fix: be-liberal", "Quiz", "Save screen as SVG"):
            assert wanted in commands
        assert {f"Kernel: {k}" for k in PROFILES} <= set(commands)
        commands["Open built-in: seed-incident"].callback()
        await settle(pilot)
        assert app.session.source.ref == "seed-incident" and "seed-incident" in screen_text(app)["status"]


@pytest.mark.asyncio
@pytest.mark.parametrize("size", SIZES)
async def test_quiz_scores_and_explains_misses(run_cache: Cache, size: tuple[int, int]) -> None:
    app = make_app("seed-incident", "3.10", "none", cache=run_cache, quiz=True)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert app.quiz is not None
        first = screen_text(app)
        quiz = " ".join(first["quiz"].split())
        assert "quiz 1/9" in quiz and "The tracker's verdict?" in quiz
        assert "INVALID: entry detached" in quiz  # the three words defined before the question
        assert "conntrack" not in current_row(first["journey"])  # asked before the hook is shown
        assert "RST" not in first["status"] and "[R]" not in first["host"]  # nothing gives it away
        assert "shows once you have answered" in " ".join(first["why_shown"].split())
        # the late ACK: 1 ACCEPT (wrong: it is INVALID), 2 NAT no, 2 LOCAL, 3 the host's stack,
        # 1 RST yes, 2 RFC 5961 would not reset, 1 host eth0 only; with drop-invalid 4 dropped by
        # a rule, with be-liberal 1 the container
        await pilot.press("1")
        said = " ".join(screen_text(app)["quiz"].split())
        assert "not ACCEPT: it is INVALID; step 4 (host/eth0 PREROUTING -200 conntrack) shows it" in said
        await pilot.press("enter")
        for key in ["2", "2", "3", "1", "2", "1", "4", "1"]:
            await pilot.press(key)
            await pilot.press("enter")
        assert isinstance(app.screen, QuizResult)
        assert "8 of 9 right" in app.screen.report and "it is **INVALID**" in app.screen.report
        assert "530,308 bytes older" in app.screen.report


@pytest.mark.asyncio
async def test_quiz_reveals_the_answer_on_screen(run_cache: Cache) -> None:
    app = make_app(str(CASES / "late-ack.json"), "3.10", None, cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("z")
        assert "quiz 1/" in screen_text(app)["quiz"]
        await pilot.press("3")  # INVALID for the crafted SYN: wrong
        t = screen_text(app)
        assert "not INVALID: it is ACCEPT" in t["quiz"] and "-200" in current_row(t["journey"])
        await pilot.press("z")  # z again leaves the quiz
        assert app.quiz is None and not app.screen_main.query_one(QuizBar).display


@pytest.mark.asyncio
async def test_screenshot_key_writes_an_svg(
    run_cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("s")
    (svg,) = tmp_path.glob("*.svg")
    assert svg.name == "nflab-seed-incident-3.10-none-pkt561-step4.svg"
    assert svg.read_text().startswith("<svg") and "INVALID" in svg.read_text()


def test_svg_option_and_bad_files(tmp_path: Path) -> None:
    out = tmp_path / "rst.svg"
    assert main("seed-incident", "3.10", "none", svg=str(out), size=(80, 24), keys=["c"]) == 0
    assert "1232" in out.read_text()  # the RST's packet id in the status line
    assert main(str(tmp_path / "nope.toml"), None, "none") == 2
    # a file that reads but does not load is found by the worker: the app exits with 2
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nbogus = 1\n')
    assert main(str(bad), None, None, svg=str(tmp_path / "bad.svg")) == 2
    assert not (tmp_path / "bad.svg").exists()
    assert main("seed-incident", None, None, svg=str(tmp_path / "no" / "dir.svg")) == 2


def test_an_svg_path_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing folder or a folder given as the file: one line and exit 2 at once, the model
    never run (it used to run first and fail at the write)."""
    import tui.app

    def never(*args: Any) -> None:
        raise AssertionError("the run started")

    monkeypatch.setattr(tui.app, "export_svg", never)
    missing = str(tmp_path / "no" / "dir.svg")
    assert main("seed-incident", None, None, svg=missing) == 2
    assert capsys.readouterr().err == f"nflab tui: {missing}: No such file or directory\n"
    assert main("seed-incident", None, None, svg=str(tmp_path)) == 2
    assert capsys.readouterr().err == f"nflab tui: {tmp_path}: Is a directory\n"


@pytest.mark.asyncio
@pytest.mark.parametrize("kernel", ["3.10", "el7", "6.1"])
async def test_the_first_screen_at_80x24_shows_the_whole_story(run_cache: Cache, kernel: str) -> None:
    """Issue 20: at 80x24 the decisive packet's whole journey, down to the host's no-socket and
    its RST, its addresses, uncut labels and the failure reason, all on the first screen."""
    app = make_app("seed-incident", kernel, "none", cache=run_cache)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.session is not None
        t = screen_text(app)
        journey = t["journey"]
        rows = [line for line in journey.splitlines() if re.match(r"^\s*▶?\d{1,3} ", line)]
        n = len(app.session.steps[app.session.pids[app.cursor.packet]])
        assert [int(re.findall(r"\d+", r)[0]) for r in rows] == list(range(1, n + 1))
        assert "NO_SOCKET" in rows[-2] and "RST" in rows[-1]
        assert "…" not in journey  # no label cut
        assert "36.110.213.207:443 > 10.21.17.99:39700" in " ".join(journey.split())
        assert "Out of window:" in " ".join(t["why_shown"].split())
        assert f"kernel {kernel}" in t["status"]


@pytest.mark.asyncio
async def test_keys_pressed_while_the_model_runs_are_kept_and_done_after(
    run_cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: keys during a re-run were dropped silently. Here f starts a run that is not in
    the cache (the model runs in a worker); the three keys pressed meanwhile are said on the
    status line and then done, in order, on the new run."""
    import dataclasses
    import threading

    import tui.app

    go = threading.Event()  # the model's run waits for it: the keys surely come while it runs

    def gated(*args: Any) -> Any:
        p = plan(*args)
        return dataclasses.replace(p, start=lambda: go.wait(30) and p.start())

    monkeypatch.setattr(tui.app, "plan", gated)
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    async with app.run_test(size=(120, 40)) as pilot:
        go.set()
        await settle(pilot)
        go.clear()
        run_cache.pop(("seed-incident", "3.10", "be-liberal", "any"), None)
        app.set_fix("be-liberal")
        assert not app.ready
        await pilot.press("right", "right", "down")
        said = " ".join(screen_text(app)["status"].split())
        go.set()
        assert len(app.pending) == 3 and "then 3 key(s)" in said
        await settle(pilot)
        assert app.session is not None and app.session.fix == "be-liberal" and not app.pending
        focus = app.session.focus
        assert app.cursor == Cursor(focus[0] + 1, 0)  # two steps on, then the next packet


@pytest.mark.asyncio
async def test_the_collector_is_off_and_the_gil_quick_while_a_rerun_runs(
    run_cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run leaves no cyclic garbage, and each collector pass over its young objects holds the
    GIL for 7-17 ms while the spinner's frame waits to be written: the collector is off while a
    re-run runs (as at launch) and on again once its run is on screen (settle_gc); the GIL's
    switch interval is 0.5 ms while the worker runs, 5 ms again once the run arrives."""
    import dataclasses
    import gc
    import threading

    import tui.app

    go = threading.Event()

    def gated(*args: Any) -> Any:
        p = plan(*args)
        return dataclasses.replace(p, start=lambda: go.wait(30) and p.start())

    monkeypatch.setattr(tui.app, "plan", gated)
    app = make_app("seed-incident", "3.10", "none", cache=run_cache)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            go.set()
            await settle(pilot)
            go.clear()
            run_cache.pop(("seed-incident", "3.10", "be-liberal", "any"), None)
            assert gc.isenabled()
            app.set_fix("be-liberal")
            assert not app.ready and not gc.isenabled()
            assert sys.getswitchinterval() == tui.app.RUN_SWITCH_S
            go.set()
            await settle(pilot)
            assert sys.getswitchinterval() == tui.app.SWITCH_S
            assert app.session is not None and app.session.fix == "be-liberal"
            for _ in range(100):  # settle_gc comes GC_AFTER_S after the run is shown: wait for it
                if gc.isenabled():
                    break
                await pilot.pause(0.1)
            assert gc.isenabled()
    finally:
        gc.enable()


def test_press_refuses_an_unknown_key_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main("seed-incident", "3.10", None, svg=str(tmp_path / "x.svg"), keys=["right", "rigth"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nflab tui: --press: 'rigth'") and err.count("\n") == 1
    assert not (tmp_path / "x.svg").exists()
