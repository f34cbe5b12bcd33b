"""``nflab``: the command line. One program, subcommands; bad input is a one-line error."""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from sim.netfilter.profiles import PROFILES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, never a traceback
        sys.stderr.write(f"nflab: {message} (see nflab --help)\n")
        raise SystemExit(2)


def _build() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nflab",
        description="A model of Linux netfilter conntrack and NAT that shows why a "
        "Docker host answers an INVALID packet with a RST.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    w = sub.add_parser("walkthrough", help="the seed incident at the conntrack level, step by step")
    w.add_argument("--kernel", choices=sorted(PROFILES), default="3.10", help="kernel profile (default 3.10)")
    w.add_argument(
        "--be-liberal", action="store_true", help="set net.netfilter.nf_conntrack_tcp_be_liberal=1"
    )
    b = sub.add_parser("bench", help="measure the model's throughput and memory on this machine")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _build()
    args = parser.parse_args(argv)
    if args.command == "walkthrough":
        from sim.walkthrough import render

        print(render(args.kernel, args.be_liberal))
        return 0
    if args.command == "bench":
        from sim.bench import run_all

        figures = run_all(lambda name: print(f"measuring {name} ...", file=sys.stderr))
        if args.json:
            print(json.dumps(figures))
        else:
            for name, value in figures.items():
                print(f"{name:<28} {value:>14,.1f}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
