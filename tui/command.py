"""``nflab tui`` (also ``nflab`` alone) and ``nflab serve``: their arguments, and the call into
the app. Textual and the model load only when the command runs."""

from __future__ import annotations

import argparse
import gc
import os
from typing import Any

from sim.api import FIXES, KERNEL_HELP, kernel_arg


def size_arg(text: str) -> tuple[int, int]:
    """``--size COLSxROWS``: a terminal size Textual can draw, 1..1000 each way."""
    cols, x, rows = text.lower().partition("x")
    if not (x and cols.isdigit() and rows.isdigit() and 1 <= int(cols) <= 1000 and 1 <= int(rows) <= 1000):
        raise argparse.ArgumentTypeError(f"expected COLSxROWS like 80x24, each 1..1000, got {text!r}")
    return int(cols), int(rows)


SOURCE_HELP = "built-in scenario, scenario file, crafted case file or capture (.pcap/.pcapng)"


def add_subcommand(subparsers: Any) -> None:
    """Register ``tui`` and ``serve`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    tui = subparsers.add_parser("tui", help="the walkthrough in the terminal (also: nflab with no arguments)")
    tui.add_argument("scenario", nargs="?", help=SOURCE_HELP)
    tui.add_argument("--kernel", type=kernel_arg, help=f"{KERNEL_HELP} (default: the file's)")
    tui.add_argument("--fix", choices=tuple(FIXES), help="apply one of the fixes")
    tui.add_argument("--quiz", action="store_true", help="start in quiz mode: predict each decisive hook")
    tui.add_argument(
        "--svg", metavar="FILE", help="write the screen as SVG to FILE instead of opening the UI"
    )
    tui.add_argument(
        "--size",
        type=size_arg,
        default=(120, 40),
        metavar="COLSxROWS",
        help="screen size for --svg (default 120x40)",
    )
    tui.add_argument(
        "--press", default="", metavar="KEYS", help="for --svg: keys to press first, e.g. 'right right f'"
    )
    tui.add_argument(
        "--root", metavar="DIR", help="o opens built-in names and files under DIR only (serve passes it)"
    )
    serve = subparsers.add_parser("serve", help="serve the walkthrough to web browsers (textual-serve)")
    serve.add_argument("scenario", nargs="?", help=SOURCE_HELP)
    serve.add_argument("--host", default="localhost", help="address to listen on (default localhost)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--root", metavar="DIR", help="o in a browser opens files under DIR too (default: built-ins only)"
    )
    serve.add_argument(
        "--public-url",
        metavar="URL",
        help="the address students type, e.g. http://lab.example.edu:8000 (default: what they typed)",
    )
    serve.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        metavar="N",
        help="browser tabs served at once; the next one is told the class is full (default 20)",
    )
    serve.add_argument(
        "--idle-minutes",
        type=float,
        default=None,
        metavar="M",
        help="close a tab after M minutes without a key (default 30)",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``tui`` or ``serve`` with parsed arguments; returns the exit status."""
    import sys

    if args.command == "serve":
        from tui.serve import main as serve_main

        return int(
            serve_main(
                args.scenario,
                args.host,
                args.port,
                root=args.root,
                public_url=args.public_url,
                max_sessions=args.max_sessions,
                idle_minutes=args.idle_minutes,
            )
        )
    cols, rows = args.size
    # no terminal, and not a browser tab of nflab serve (textual-serve sets TEXTUAL_DRIVER to its
    # web driver and talks over pipes)
    web = "TEXTUAL_DRIVER" in os.environ
    if args.svg is None and not web and not (sys.stdin.isatty() and sys.stdout.isatty()):
        from tui.session import DEFAULT_SCENARIO, SourceError, plan

        try:  # a file that cannot be opened says so first, as with a terminal
            plan(args.scenario or DEFAULT_SCENARIO, args.kernel, args.fix)
        except SourceError as e:
            print(f"nflab tui: {e}", file=sys.stderr)
            return 2
        print(
            "nflab: the walkthrough TUI needs a terminal; without one: nflab run "
            f"{args.scenario or 'seed-incident'} (the timeline), nflab walkthrough, or nflab tui --svg FILE",
            file=sys.stderr,
        )
        return 2
    # Textual's modules, the model's and the first run are ~150k objects that nearly all live
    # on: the collector's passes over them cost a tenth of the launch and find next to nothing,
    # so it is off until the first run is on screen (then tui.app.settle_gc), at the latest
    # until the app ends
    gc.disable()
    try:
        from tui.app import main as tui_main

        return int(
            tui_main(
                args.scenario,
                args.kernel,
                args.fix,
                quiz=args.quiz,
                svg=args.svg,
                size=(cols, rows),
                keys=args.press.split(),
                root=args.root,
            )
        )
    finally:
        gc.enable()
