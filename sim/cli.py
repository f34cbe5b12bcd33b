"""``nflab``: the command line. One program, subcommands; bad input is a one-line error.

Each subcommand lives with the code it drives: its module has ``add_subcommand(subparsers)``
(the arguments) and ``main(args) -> int`` (the exit status), and imports its heavy
dependencies inside ``main``. To run one command only its module is imported; ``nflab --help``
imports them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import NoReturn

# command -> the module that registers and runs it, in the order ``nflab --help`` lists them
COMMANDS = {
    "walkthrough": "sim.report.walkthrough",
    "tui": "tui.command",  # the composition root: sim itself never imports tui
    "serve": "tui.command",
    "run": "sim.report.timeline",
    "replay": "sim.scenario.replay_command",
    "kernel-check": "sim.kernel.check",
    "figures": "sim.report.figures",
    "check": "sim.report.exercises",
    "grade": "sim.report.grade",
    "pcap": "sim.pcap.command",
    "doctor": "sim.doctor",
    "kernels": "sim.report.kernels",
    "diff-kernels": "sim.testing.diff",
    "bench": "sim.bench",
    "completion": "sim.completion",
}
DEFAULT_COMMAND = "tui"  # ``nflab`` without arguments


EXIT_CODES = """exit status:
  0    done (diff-kernels: no difference; check: every answer right)
  1    diff-kernels: differences found; check: an answer wrong; kernel-check: a disagreement
  2    bad input or arguments (one line on stderr naming the place)
  130  interrupted (Ctrl-C; diff-kernels also on SIGTERM, keeping what it found)"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nflab")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _epilog() -> str:
    from sim.netfilter.profiles import PROFILES
    from sim.scenario.loader import builtin_cases, builtin_scenarios

    return (
        f"built-in scenarios: {', '.join(builtin_scenarios())}\n"
        f"built-in cases: {', '.join(builtin_cases())}\n"
        f"kernel profiles: {', '.join(PROFILES)} (or what uname -r prints)\n\n{EXIT_CODES}"
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, never a traceback
        sys.stderr.write(f"nflab: {message} (see nflab --help)\n")
        raise SystemExit(2)


class _Main(_Parser):
    """The top-level parser: the epilog (the built-in names) and the version are looked up only
    when asked for, so that running one command does not pay for them at start-up."""

    def format_help(self) -> str:
        self.epilog = _epilog()
        return super().format_help()


class _Version(argparse.Action):
    """``--version``: ``nflab X.Y.Z`` on stdout, exit 0 (argparse's own action, looked up late)."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kwargs: object) -> None:
        print(f"nflab {_version()}")
        parser.exit()


def _modules(argv: list[str]) -> list[ModuleType]:
    """The modules to register: the named command's alone, or every one (``--help``, a typo)."""
    first = argv[0] if argv else DEFAULT_COMMAND
    names = [COMMANDS[first]] if first in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    return [importlib.import_module(name) for name in names]


def build(argv: list[str]) -> argparse.ArgumentParser:
    """The parser, with the subcommands that running ``argv`` needs."""
    p = _Main(
        prog="nflab",
        description="A model of Linux netfilter conntrack and NAT that shows why a "
        "Docker host answers an INVALID packet with a RST.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _modules(argv):
        module.add_subcommand(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    args = build(args_in).parse_args(args_in or [DEFAULT_COMMAND])
    module = importlib.import_module(COMMANDS[args.command])
    return int(module.main(args))


def entry() -> int:
    """The console script: ``main`` with a quiet exit when the reader closes the pipe."""
    try:
        return main()
    except BrokenPipeError:
        sys.stderr.close()  # nothing more can be written; do not report the closed pipe
        return 0
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's 128 + SIGINT
        print("nflab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(entry())
