"""nflab diff-kernels: differences between two profiles, each shrunk to a replayable case."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sim.scenario.case import parse_case
from sim.testing import TcpAction
from sim.testing.diff import DiffRun, diff_kernels, first_divergence, write_finding
from sim.testing.strategies import Conversation

from .test_tracker import LATE_ACK

NFLAB = [sys.executable, "-m", "sim.cli"]
HANG_GUARD_S = 900  # only a hung child gets near this; it is no verdict on speed


def test_the_late_ack_is_where_310_and_61_part() -> None:
    conv = Conversation(LATE_ACK, 1000000, 5000000, 7, 7)
    d = first_divergence(conv, "3.10", "6.1")
    assert d is not None and d.index == 5
    assert (d.a.window, d.b.window) == (TcpAction.INVALID, TcpAction.IGNORE)
    assert first_divergence(conv, "6.1", "6.1") is None


def test_each_difference_is_distinct_minimal_and_replayable(tmp_path: Path) -> None:
    run = diff_kernels(DiffRun("3.10", "6.1", examples=100, seed=2))
    assert run.findings and not run.interrupted
    signatures = [f.divergence.signature for f in run.findings]
    assert len(set(signatures)) == len(signatures)
    for n, f in enumerate(run.findings, 1):
        # cut right after the first differing segment
        assert f.divergence.index == len(f.conversation.segments) - 1
        path = write_finding(f, n, run, tmp_path)
        case = json.loads(path.read_text())
        assert case["kernel"] == "3.10" and len(parse_case(case)[3]) == len(f.conversation.segments)
        assert f.replay_confirms is True, path


def test_a_profile_does_not_differ_from_itself() -> None:
    assert diff_kernels(DiffRun("6.1", "6.1", examples=30, seed=0)).findings == []


def test_bad_profile_is_one_line_exit_2() -> None:
    proc = subprocess.run([*NFLAB, "diff-kernels", "3.10", "2.6"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "kernel '2.6': older than every profile" in proc.stderr


def test_ctrl_c_prints_partial_result_one_line_and_exits_130(tmp_path: Path) -> None:
    # stderr on a terminal (a pty): the status line is drawn there. Nothing here waits a fixed
    # time: SIGINT goes once the status line is on the terminal, and a reader drains the
    # terminal for as long as the child runs, so a slow machine only makes the test slower.
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*NFLAB, "diff-kernels", "3.10", "6.1", "--fuzz", "100000", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    terminal = bytearray()
    ready = threading.Event()

    def drain() -> None:
        try:
            while chunk := os.read(master, 4096):
                terminal.extend(chunk)
                if b"conversations tried" in terminal:
                    ready.set()
        except OSError:  # the child closed the terminal
            pass
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    ready.wait()
    assert proc.poll() is None, "diff-kernels ended before it was interrupted"
    status = bytes(terminal)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=HANG_GUARD_S)
    reader.join(timeout=HANG_GUARD_S)
    os.close(master)
    rest = bytes(terminal)[len(status) :]
    assert proc.returncode == 130
    assert b"\r3.10 vs 6.1: " in status
    lines = [x for x in rest.decode().replace("\x1b[K", "").split("\r") if x.strip()]
    redraws = [x for x in lines if x.startswith("3.10 vs 6.1: ")]  # drawn before SIGINT landed
    assert lines[len(redraws) :] == lines[-1:], lines
    assert lines[-1].startswith("nflab diff-kernels: interrupted after "), lines
    assert out.splitlines()[-1].startswith("3.10 vs 6.1: ")
    assert "Traceback" not in out + rest.decode()


def test_an_interrupt_lost_in_a_gc_callback_is_not_printed_and_still_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal handled inside a gc callback (hypothesis installs one): its KeyboardInterrupt
    is "Exception ignored", which Python printed as a traceback under the result line. Here the
    handler runs inside a gc callback for certain: the hook hears nothing and check() stops."""
    import gc

    from sim.testing.diff import Interrupts

    heard: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: heard.append(info.exc_value))
    with Interrupts() as interrupts:

        def callback(phase: str, _info: object) -> None:
            if phase == "start":
                interrupts._handle(signal.SIGINT, None)

        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        assert interrupts.caught
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    assert heard == []


def test_other_lost_exceptions_still_reach_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from sim.testing.diff import Interrupts

    heard: list[BaseException | None] = []
    hook = lambda info: heard.append(info.exc_value)  # noqa: E731
    monkeypatch.setattr(sys, "unraisablehook", hook)

    class Noisy:
        def __del__(self) -> None:
            raise ValueError("from __del__")

    with Interrupts():
        Noisy()
    assert [type(e) for e in heard] == [ValueError]
    assert sys.unraisablehook is hook  # restored on exit
