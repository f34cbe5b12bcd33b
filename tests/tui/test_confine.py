"""Issue 22: what ``o`` may open when the walkthrough is served. Every escape is tried through the
app, as a student would type it into ``o``: the app says one line and opens nothing, and reads
nothing (a FIFO that nobody writes would block a read; ``/dev/zero`` would feed it forever).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.tui.conftest import settle
from tui.app import NflabApp, make_app
from tui.confine import Confinement
from tui.session import Session

CASES = Path(__file__).resolve().parents[2] / "sim" / "scenario" / "cases"
Cache = dict[tuple[str, str, str], Session]


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A course folder with one case in it, a secret beside it, and the traps inside it."""
    root = tmp_path / "course"
    (root / "ex").mkdir(parents=True)
    shutil.copy(CASES / "late-ack.json", root / "ex" / "mine.json")
    secret = tmp_path / "solutions.json"
    shutil.copy(CASES / "no-flags.json", secret)
    (root / "ex" / "link.json").symlink_to(secret)  # a symlink inside the root pointing out
    (root / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(root / "pipe.json")
    (root / "odd\nname.json").write_text((CASES / "late-ack.json").read_text())
    return root


def messages(app: NflabApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def try_open(app: NflabApp, pilot: object, ref: str) -> None:
    app.open_ref(ref)
    await settle(pilot)


REASONS = ("outside the course folder", "not a regular file", "line break")
ESCAPES = [
    "../solutions.json",
    "ex/../../solutions.json",
    "{tmp}/solutions.json",  # absolute, outside
    "ex/link.json",
    "zero.json",
    "/dev/zero",
    "pipe.json",
    "odd\nname.json",
    "/etc/passwd",
    ".",
]


@pytest.mark.asyncio
async def test_every_escape_from_the_course_folder_is_one_line_and_opens_nothing(
    course: Path, run_cache: Cache
) -> None:
    app = make_app("seed-incident", "6.1", "none", cache=run_cache, root=course)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        before = app.session
        for ref in ESCAPES:
            ref = ref.format(tmp=course.parent)
            app.clear_notifications()
            await try_open(app, pilot, ref)
            said = messages(app)
            assert len(said) == 1 and "\n" not in said[0], (ref, said)
            assert app.session is before, ref  # nothing opened
            assert any(why in said[0] for why in REASONS), (ref, said)
        for ref in ("../solutions.json", "ex/link.json", "/dev/zero", f"{course.parent}/solutions.json"):
            app.clear_notifications()
            await try_open(app, pilot, ref)
            assert "outside the course folder" in messages(app)[0], ref
        # inside the root: a file opens (by a path with .. that stays inside, too), and so do the
        # built-in names
        await try_open(app, pilot, "ex/../ex/mine.json")
        assert app.session is not before and app.session is not None
        assert app.session.source.ref == str(course / "ex" / "mine.json")
        await try_open(app, pilot, "no-flags")
        assert app.session.source.ref == "no-flags" and app.session.source.kind == "case"


@pytest.mark.asyncio
async def test_a_served_session_without_root_opens_built_in_names_only(
    course: Path, run_cache: Cache
) -> None:
    app = make_app("seed-incident", "6.1", "none", cache=run_cache, confined=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        before = app.session
        await try_open(app, pilot, str(course / "ex" / "mine.json"))
        assert app.session is before
        assert "outside the course folder" in messages(app)[-1]
        await try_open(app, pilot, "late-ack")  # a built-in case by its name (issue 20)
        assert app.session is not before and app.session is not None
        assert app.session.source.kind == "case" and "late-ack" in app.session.title


def test_an_unconfined_open_still_refuses_fifos_devices_and_line_breaks(course: Path) -> None:
    from tui.session import SourceError

    free = Confinement(False)
    assert free.check(str(course / "ex" / "link.json")) == str(course / "ex" / "link.json")
    for ref in ("/dev/zero", str(course / "pipe.json"), str(course / "zero.json"), "a\nb.json"):
        with pytest.raises(SourceError) as e:
            free.check(ref)
        assert "\n" not in str(e.value)


def test_nflab_tui_refuses_a_fifo_on_the_command_line(
    course: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui.app import main

    assert main(str(course / "pipe.json"), None, None) == 2
    err = capsys.readouterr().err
    assert err == f"nflab tui: {course / 'pipe.json'}: not a regular file\n"
    assert main(None, None, None, root=str(course / "nope")) == 2
    assert "--root" in capsys.readouterr().err
