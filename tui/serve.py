"""``nflab serve``: the walkthrough in a web browser, for classrooms where students cannot install
Python. textual-serve starts one ``nflab tui`` per browser tab and relays its screen."""

from __future__ import annotations

import shlex
import sys

from tui.session import DEFAULT_SCENARIO, SourceError, plan


def command(scenario: str | None) -> str:
    """The command textual-serve runs for each browser tab."""
    return shlex.join([sys.executable, "-m", "sim.cli", "tui", scenario or DEFAULT_SCENARIO])


def main(scenario: str | None, host: str, port: int) -> int:
    """Serve until interrupted; 2 with one line on stderr when the scenario cannot be opened."""
    try:
        plan(scenario or DEFAULT_SCENARIO)
    except SourceError as e:
        print(f"nflab serve: {e}", file=sys.stderr)
        return 2
    try:
        from textual_serve.server import Server
    except ImportError:
        print("nflab serve: needs textual-serve: pip install 'nflab[serve]'", file=sys.stderr)
        return 2

    Server(command(scenario), host=host, port=port, title="nflab").serve()
    return 0
