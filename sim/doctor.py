"""``nflab doctor``: the pre-lab check of one machine (no kernel file: it mirrors nothing).

One line per check, ``OK``, ``WARN`` or ``FAIL``, with what was found and what to do. What the
checks read (Python's version, the terminal, the environment, the browser, the effective user,
the tools on ``PATH``) is gathered once into a :class:`Machine`, so tests pass their own.
Exit status: 1 when a check FAILs (the walkthrough cannot run), else 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import webbrowser
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

MIN_PYTHON = (3, 11)  # pyproject.toml's requires-python
MIN_TERMINAL = (80, 24)  # the walkthrough's smallest screen
# the real-kernel appendix (docs/real-machine.md) and the package that brings each
APPENDIX_TOOLS = {
    "ip": "iproute2",
    "iptables": "iptables",
    "nft": "nftables",
    "conntrack": "conntrack",
    "tcpdump": "tcpdump",
}


class Status(Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    name: str
    status: Status
    found: str
    todo: str = ""  # what to do; empty when OK

    def line(self) -> str:
        todo = f" -> {self.todo}" if self.todo else ""
        return f"{self.status.value:<4}  {self.name:<10} {self.found}{todo}"


@dataclass(frozen=True, slots=True)
class Machine:
    """What the checks read; :meth:`current` reads this machine."""

    python: tuple[int, int, int]
    terminal: tuple[int, int] | None  # columns, rows; None: stdout is not a terminal
    env: Mapping[str, str]
    platform: str  # sys.platform
    euid: int | None  # None where there is no geteuid (Windows)
    browser: str | None  # the browser webbrowser would start, None: none found
    modules: Mapping[str, bool]  # importable: textual, textual_serve
    tools: Mapping[str, str | None]  # APPENDIX_TOOLS -> path on PATH, or None

    @classmethod
    def current(cls) -> Machine:
        try:
            size = os.get_terminal_size(sys.stdout.fileno())
            terminal: tuple[int, int] | None = (size.columns, size.lines)
        except (OSError, ValueError):
            terminal = None
        try:
            browser: str | None = type(webbrowser.get()).__name__
        except webbrowser.Error:
            browser = None
        v = sys.version_info
        return cls(
            python=(v.major, v.minor, v.micro),
            terminal=terminal,
            env=dict(os.environ),
            platform=sys.platform,
            euid=os.geteuid() if hasattr(os, "geteuid") else None,
            browser=browser,
            modules={m: importlib.util.find_spec(m) is not None for m in ("textual", "textual_serve")},
            tools={tool: shutil.which(tool) for tool in APPENDIX_TOOLS},
        )


def check_python(m: Machine) -> Finding:
    found = ".".join(map(str, m.python))
    if m.python[:2] >= MIN_PYTHON:
        return Finding("python", Status.OK, found)
    need = ".".join(map(str, MIN_PYTHON))
    return Finding(
        "python", Status.FAIL, found, f"install Python {need} or newer (python.org, or your distribution)"
    )


def check_textual(m: Machine) -> Finding:
    if m.modules.get("textual"):
        return Finding("textual", Status.OK, "installed")
    return Finding("textual", Status.FAIL, "missing", "pip install -e . (or the wheelhouse: docs/lab.md)")


def check_terminal(m: Machine) -> Finding:
    if m.terminal is None:
        return Finding(
            "terminal", Status.WARN, "not a terminal", "run nflab doctor in the terminal you will use"
        )
    cols, rows = m.terminal
    if cols >= MIN_TERMINAL[0] and rows >= MIN_TERMINAL[1]:
        return Finding("terminal", Status.OK, f"{cols}x{rows}")
    want = "x".join(map(str, MIN_TERMINAL))
    return Finding(
        "terminal",
        Status.WARN,
        f"{cols}x{rows}",
        f"enlarge the window to at least {want}, or use a browser (nflab serve)",
    )


def check_colours(m: Machine) -> Finding:
    term, colorterm = m.env.get("TERM", ""), m.env.get("COLORTERM", "")
    if "NO_COLOR" in m.env:
        return Finding("colours", Status.WARN, "NO_COLOR is set", "unset NO_COLOR: the verdicts are coloured")
    if colorterm in ("truecolor", "24bit"):
        return Finding("colours", Status.OK, "truecolor")
    if "256color" in term:
        return Finding("colours", Status.OK, "256 colours")
    if m.platform == "win32" and "WT_SESSION" in m.env:
        return Finding("colours", Status.OK, "Windows Terminal")
    return Finding(
        "colours",
        Status.WARN,
        f"TERM={term or '(unset)'}",
        "use a terminal with 256 colours (export TERM=xterm-256color), or a browser (nflab serve)",
    )


def check_serve(m: Machine) -> Finding:
    if m.modules.get("textual_serve"):
        return Finding("serve", Status.OK, "textual-serve installed")
    return Finding(
        "serve",
        Status.WARN,
        "textual-serve missing",
        "only the lab server needs it: pip install 'nflab[serve]'",
    )


def check_browser(m: Machine) -> Finding:
    if m.browser is not None:
        return Finding("browser", Status.OK, m.browser)
    return Finding(
        "browser", Status.WARN, "none found", "open the URL nflab serve prints in any browser, on any machine"
    )


def check_root(m: Machine) -> Finding:
    if not m.platform.startswith("linux"):
        return Finding(
            "root", Status.WARN, m.platform, "the real-kernel appendix needs Linux; the rest runs here"
        )
    if m.euid == 0:
        return Finding("root", Status.OK, "running as root")
    return Finding(
        "root",
        Status.WARN,
        f"uid {m.euid}",
        "only the real-kernel appendix needs root (sudo nflab kernel-check)",
    )


def check_tool(m: Machine, tool: str) -> Finding:
    path = m.tools.get(tool)
    if path:
        return Finding(tool, Status.OK, path)
    return Finding(
        tool, Status.WARN, "not on PATH", f"for the real-kernel appendix: apt install {APPENDIX_TOOLS[tool]}"
    )


def run_checks(m: Machine) -> list[Finding]:
    """Every check, in the order a student fixes them."""
    base = [
        check_python,
        check_textual,
        check_terminal,
        check_colours,
        check_serve,
        check_browser,
        check_root,
    ]
    return [c(m) for c in base] + [check_tool(m, tool) for tool in APPENDIX_TOOLS]


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``doctor`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="check this machine before the lab (Python, terminal, browser, root, tools)",
        description="One line per check: OK, WARN (something optional is missing) or FAIL (the "
        "walkthrough cannot run), with what to do. Exit 1 when a check FAILs.",
    )
    return p


def main(args: argparse.Namespace, machine: Machine | None = None) -> int:
    findings = run_checks(machine or Machine.current())
    for f in findings:
        print(f.line())
    failed = sum(f.status is Status.FAIL for f in findings)
    warned = sum(f.status is Status.WARN for f in findings)
    print(f"{failed} FAIL, {warned} WARN" + ("" if failed else ": ready for the lab"))
    return 1 if failed else 0
