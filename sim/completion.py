"""``nflab completion bash``: a shell completion script for every subcommand."""

from __future__ import annotations

import argparse
from typing import Any


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``completion`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    c: argparse.ArgumentParser = subparsers.add_parser(
        "completion", help='print a shell completion script (bash): eval "$(nflab completion bash)"'
    )
    c.add_argument("shell", choices=("bash",), help="the shell")
    return c


def main(args: argparse.Namespace) -> int:
    from sim.cli import build

    print(completion_script(build(["--help"])))  # every subcommand, registered by its module
    return 0


def completion_script(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for ``parser``: subcommands, their options, choices and the
    built-in names where a scenario or case is expected."""
    from sim.scenario.loader import builtin_cases, builtin_scenarios

    names = " ".join(builtin_scenarios() + builtin_cases())
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = ["_nflab() {", '  local cur="${COMP_WORDS[COMP_CWORD]}" cmd="${COMP_WORDS[1]}"', "  local words"]
    lines.append('  if [ "$COMP_CWORD" -eq 1 ]; then')
    lines.append(f'    words="{" ".join(subs.choices)} --help --version"')
    lines.append('  else case "$cmd" in')
    for name, sub in subs.choices.items():
        opts = [o for a in sub._actions for o in a.option_strings]
        extra = names if name in ("run", "replay", "tui", "serve", "kernel-check") else ""
        lines.append(f'    {name}) words="{" ".join(opts)} {extra}";;')
    lines.append("    esac")
    lines.append("  fi")
    lines.append('  COMPREPLY=($(compgen -W "$words" -f -- "$cur"))')
    lines.append("}")
    lines.append("complete -o filenames -F _nflab nflab")
    return "\n".join(lines)
