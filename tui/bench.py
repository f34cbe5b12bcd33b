"""The TUI's wall-time figures, measured as a user sees them: the real ``nflab`` in a pseudo-terminal.

A child process runs ``nflab tui`` on a pty of 120x40. This side plays the terminal: it answers
Textual's query for synchronized output, so every frame arrives between ``ESC[?2026h`` and
``ESC[?2026l``, and it stamps the wall clock when a frame's last byte arrives. Nothing inside
the app is timed: interpreter start, imports, the model run, layout and the bytes on the pty all
count.

- ``first_frame_s``: from ``fork`` to the end of the first frame on the pty;
- ``story_s``: from ``fork`` to the end of the frame that shows the INVALID late ACK;
- ``key_to_frame_ms``: per key, from writing the key's bytes to the end of the first frame after
  it (the key's effect: the cursor moved, or the spinner of a re-run appeared);
- ``rerun_s``: for ``f``/``k``, from the key to the frame whose status line shows the new run (the
  worse). The next key waits for that frame: the spinner stands still, so a quiet pty alone does
  not mean the run is over.

As a user launches an installed nflab: with the modules' bytecode compiled (pip compiles it at
install; a source checkout writes it on its first launch). A launch that finds none compiles
~200 modules first, ~0.1 s more (PYTHONDONTWRITEBYTECODE=1 makes every launch such a launch).
So the child writes its bytecode under a temporary PYTHONPYCACHEPREFIX in one launch that is
not timed, and the timed launch reads it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import tempfile
import termios
import time
from dataclasses import dataclass, field

SIZE = (120, 40)
SYNC_END = b"\x1b[?2026l"
QUERY_SYNC = b"\x1b[?2026$p"
ANSWER_SYNC = b"\x1b[?2026;2$y"  # DECRPM: mode 2026 known, currently reset
QUIET = 0.25  # seconds without output: the app has settled
KEYS: dict[str, bytes] = {
    "right": b"\x1b[C",
    "left": b"\x1b[D",
    "down": b"\x1b[B",
    "up": b"\x1b[A",
    "home": b"\x1b[H",
}
_CSI = re.compile(rb"\x1b\[[0-9;?<>=$]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def plain(data: bytes) -> str:
    """The text of terminal output without escape sequences (for finding words in a frame)."""
    return _CSI.sub(b"", data).decode("utf-8", "replace")


@dataclass
class Terminal:
    """One child on a pty, and the frames it wrote: (wall time of the frame's end, its bytes)."""

    pid: int
    fd: int
    started: float
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    _buf: bytes = b""

    @classmethod
    def spawn(cls, argv: list[str], size: tuple[int, int] = SIZE, pycache: str | None = None) -> Terminal:
        """``argv`` on a new pty of ``size``; ``pycache``: where its bytecode is read and written."""
        cols, rows = size
        env = dict(
            os.environ, TERM="xterm-256color", COLORTERM="truecolor", COLUMNS=str(cols), LINES=str(rows)
        )
        env.pop("TEXTUAL", None)
        if pycache is not None:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = pycache
        started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its terminal
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(argv[0], argv, env)
        return cls(pid, fd, started)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 1 << 16)
        except OSError:
            return False
        if QUERY_SYNC in chunk:
            os.write(self.fd, ANSWER_SYNC)
        self._buf += chunk
        while SYNC_END in self._buf:
            frame, _, self._buf = self._buf.partition(SYNC_END)
            self.frames.append((time.perf_counter(), frame))
        return True

    def wait_frame(self, after: float, timeout: float = 10.0, text: str | None = None) -> float:
        """Wall time at which the first frame ended after ``after`` (containing ``text`` if given)."""
        seen = len(self.frames)
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for t, frame in self.frames[seen:]:
                if t >= after and (text is None or text in plain(frame)):
                    return t
            seen = len(self.frames)
            self._read(deadline - time.perf_counter())
        last = plain(self.frames[-1][1])[-300:] if self.frames else "nothing"
        wanted = f" with {text!r}" if text else ""
        raise TimeoutError(f"no frame{wanted} within {timeout} s; last: {last!r}")

    def settle(self, timeout: float = 10.0) -> float:
        """Read until the app has written nothing for QUIET seconds; the last frame's end time."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and self._read(QUIET):
            pass
        return self.frames[-1][0] if self.frames else time.perf_counter()

    def press(self, key: str) -> float:
        """Write one key; returns the wall time it was written."""
        os.write(self.fd, KEYS.get(key, key.encode()))
        return time.perf_counter()

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


# (key, a word the frame that answers it shows): the status line's step counter, or the spinner
STEP_KEYS = [(k, "step ") for k in ["right"] * 8 + ["left"] * 8 + ["down", "up", "c", "c", "i", "home"]]


def rerun_keys() -> list[tuple[str, str, str]]:
    """(key, what its first frame shows: the spinner, what the frame with the new run shows: the
    status line's kernel and fix, two spaces apart, which the spinner's words never are)."""
    from sim.api import KERNELS
    from tui.session import cycle

    return [
        ("f", "running seed-incident", "kernel 3.10  fix drop-invalid"),
        ("k", "running seed-incident", f"kernel {cycle(KERNELS, '3.10')}  fix drop-invalid"),
    ]


STORY = "bound IV"  # on the frame that shows the INVALID late ACK (its failed window bound)


def measure(argv: list[str] | None = None) -> dict[str, float]:
    """One launch of the TUI on a pty: first frame, the story frame, key-to-frame, re-runs."""
    argv = argv or [sys.executable, "-m", "sim.cli", "tui", "--kernel", "3.10", "--fix", "none"]
    with tempfile.TemporaryDirectory(prefix="nflab-bench-pyc-") as pycache:
        compiling = Terminal.spawn(argv, pycache=pycache)  # writes the bytecode; not timed
        try:
            compiling.wait_frame(compiling.started, timeout=30, text=STORY)
        finally:
            compiling.close()
        return _timed(Terminal.spawn(argv, pycache=pycache))


def _timed(term: Terminal) -> dict[str, float]:
    try:
        first = term.wait_frame(term.started) - term.started
        story = term.wait_frame(term.started, text=STORY) - term.started
        term.settle()
        keys: list[float] = []
        for key, shows in STEP_KEYS:
            pressed = term.press(key)
            keys.append(term.wait_frame(pressed, text=shows) - pressed)
            term.settle()
        reruns: list[float] = []
        for key, spinner, result in rerun_keys():
            pressed = term.press(key)
            keys.append(term.wait_frame(pressed, text=spinner) - pressed)
            reruns.append(term.wait_frame(pressed, text=result, timeout=30) - pressed)
            term.settle()
    finally:
        term.close()
    return {
        "tui_first_frame_s": round(first, 3),
        "tui_story_frame_s": round(story, 3),
        "tui_key_to_frame_ms": round(max(keys) * 1000, 1),
        "tui_key_to_frame_median_ms": round(sorted(keys)[len(keys) // 2] * 1000, 1),
        "tui_rerun_s": round(max(reruns), 3),
    }


if __name__ == "__main__":
    print(measure())
