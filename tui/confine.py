"""What the walkthrough's ``o`` may open: built-in names always; files only when the app is not
confined, or when they lie under the course folder (``--root``) once ``..`` and symlinks are
resolved. A served session (``nflab serve``) is confined: without ``--root`` it opens built-in
names only. Whatever is refused is one line for the app, and nothing is opened or read.

Only regular files are opened, anywhere: a FIFO or a device (``/dev/zero``) would block the
loader or feed it forever, so they are refused from their ``stat``, without opening them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from tui.session import SourceError

OUTSIDE = "outside the course folder"


def builtin(ref: str) -> str | None:
    """``ref`` when it names a built-in scenario or crafted case (``seed-incident``,
    ``late-ack``: :func:`tui.session.plan` opens them by name), else None."""
    from sim.api import builtin_cases, builtin_scenarios

    return ref if ref in builtin_scenarios() or ref in builtin_cases() else None


def regular_file(path: Path, shown: str) -> None:
    """SourceError unless ``path`` is a regular file; it is not opened (a FIFO would block)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise SourceError(f"{shown}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{shown}: not a regular file")


@dataclass(frozen=True, slots=True)
class Confinement:
    """``confined`` False: any readable regular file. True: built-in names, and with ``root``
    the regular files under it."""

    confined: bool
    root: Path | None = None

    def check(self, ref: str) -> str:
        """What to open for ``ref`` as typed; SourceError (one line) for anything refused."""
        if any(c in ref for c in "\n\r\0"):
            raise SourceError("a file name with a line break or NUL is not opened")
        known = builtin(ref)
        if known is not None:
            return known
        if not self.confined:
            regular_file(Path(ref), ref)
            return ref
        if self.root is None:
            raise SourceError(f"{ref}: {OUTSIDE} (this server opens built-in names only)")
        root = self.root.resolve()
        path = (root / ref).resolve()  # an absolute ref replaces root: caught just below
        if not path.is_relative_to(root):
            raise SourceError(f"{ref}: {OUTSIDE}")
        regular_file(path, ref)
        return str(path)


def course_root(directory: str) -> Path:
    """``--root DIR`` checked: an existing directory, resolved; SourceError otherwise."""
    path = Path(directory).resolve()
    if not path.is_dir():
        raise SourceError(f"--root {directory}: not a directory")
    return path
