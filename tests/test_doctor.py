"""``nflab doctor``: each check judged on an injected machine (nothing read from this one)."""

import argparse
from dataclasses import replace

import pytest

from sim.doctor import APPENDIX_TOOLS, Machine, Status, main, run_checks

READY = Machine(
    python=(3, 11, 2),
    terminal=(120, 40),
    env={"TERM": "xterm-256color"},
    platform="linux",
    euid=0,
    browser="Chrome",
    modules={"textual": True, "textual_serve": True},
    tools={tool: f"/usr/sbin/{tool}" for tool in APPENDIX_TOOLS},
)


def status(m: Machine) -> dict[str, Status]:
    return {f.name: f.status for f in run_checks(m)}


def test_a_ready_machine_is_all_ok(capsys):
    assert set(status(READY).values()) == {Status.OK}
    assert main(argparse.Namespace(), READY) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 + len(APPENDIX_TOOLS) + 1
    assert lines[0].startswith("OK    python     3.11.2")
    assert lines[-1] == "0 FAIL, 0 WARN: ready for the lab"


@pytest.mark.parametrize(
    ("change", "name", "expect", "todo"),
    [
        ({"python": (3, 10, 12)}, "python", Status.FAIL, "Python 3.11 or newer"),
        ({"modules": {"textual": False, "textual_serve": True}}, "textual", Status.FAIL, "pip install"),
        ({"terminal": (80, 23)}, "terminal", Status.WARN, "at least 80x24"),
        ({"terminal": (79, 40)}, "terminal", Status.WARN, "at least 80x24"),
        ({"terminal": None}, "terminal", Status.WARN, "in the terminal you will use"),
        ({"env": {"TERM": "xterm"}}, "colours", Status.WARN, "256 colours"),
        ({"env": {"TERM": "xterm-256color", "NO_COLOR": "1"}}, "colours", Status.WARN, "unset NO_COLOR"),
        ({"modules": {"textual": True, "textual_serve": False}}, "serve", Status.WARN, "nflab[serve]"),
        ({"browser": None}, "browser", Status.WARN, "URL nflab serve prints"),
        ({"euid": 1000}, "root", Status.WARN, "sudo"),
        ({"platform": "darwin", "euid": 501}, "root", Status.WARN, "needs Linux"),
        ({"tools": {**READY.tools, "conntrack": None}}, "conntrack", Status.WARN, "apt install conntrack"),
        ({"tools": {**READY.tools, "nft": None}}, "nft", Status.WARN, "apt install nftables"),
    ],
)
def test_each_check_says_what_to_do(change, name, expect, todo):
    findings = {f.name: f for f in run_checks(replace(READY, **change))}
    assert findings[name].status is expect
    assert todo in findings[name].line()
    others = {n: f.status for n, f in findings.items() if n != name}
    assert set(others.values()) == {Status.OK}


def test_colours_from_colorterm_and_the_80x24_edge():
    m = replace(READY, env={"TERM": "xterm", "COLORTERM": "truecolor"}, terminal=(80, 24))
    assert status(m)["colours"] is Status.OK and status(m)["terminal"] is Status.OK


def test_fail_exits_1_warn_exits_0(capsys):
    assert main(argparse.Namespace(), replace(READY, python=(3, 9, 0))) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "1 FAIL, 0 WARN"
    assert main(argparse.Namespace(), replace(READY, euid=1000, browser=None)) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 FAIL, 2 WARN: ready for the lab"


def test_the_current_machine_is_read_without_error():
    m = Machine.current()
    assert m.python >= (3, 11, 0) and set(m.tools) == set(APPENDIX_TOOLS)
