"""``nflab``: the command line. One program, subcommands; bad input is a one-line error."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sim.netfilter.profiles import DEFAULT_PROFILE, PROFILES, resolve_kernel
from sim.scenario.fixes import FIXES

if TYPE_CHECKING:
    from sim.scenario.story import Story

# Subcommands whose parser and main() live with the code they drive.
SUBCOMMAND_MODULES = {
    "kernel-check": "sim.kernel.check",
    "figures": "sim.report.figures",
    "check": "sim.report.exercises",
    "pcap": "sim.pcap.command",
    "doctor": "sim.doctor",
    "grade": "sim.report.grade",
}


KERNEL_HELP = f"kernel: a profile ({', '.join(PROFILES)}) or what uname -r prints"


def kernel_arg(text: str) -> str:
    """``--kernel``: a profile name or a release string -> the profile's name (one-line error)."""
    try:
        return resolve_kernel(text).name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
    from sim.scenario.loader import builtin_cases, builtin_scenarios

    return (
        f"built-in scenarios: {', '.join(builtin_scenarios())}\n"
        f"built-in cases: {', '.join(builtin_cases())}\n"
        f"kernel profiles: {', '.join(PROFILES)} (or what uname -r prints)\n\n{EXIT_CODES}"
    )


def size_arg(text: str) -> tuple[int, int]:
    """``--size COLSxROWS``: a terminal size Textual can draw, 1..1000 each way."""
    cols, x, rows = text.lower().partition("x")
    if not (x and cols.isdigit() and rows.isdigit() and 1 <= int(cols) <= 1000 and 1 <= int(rows) <= 1000):
        raise argparse.ArgumentTypeError(f"expected COLSxROWS like 80x24, each 1..1000, got {text!r}")
    return int(cols), int(rows)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, never a traceback
        sys.stderr.write(f"nflab: {message} (see nflab --help)\n")
        raise SystemExit(2)


def _build(full: bool = True) -> argparse.ArgumentParser:
    """The parser; ``full=False`` leaves out the subcommands whose modules are slow to import, for
    ``nflab`` / ``nflab tui`` / ``nflab serve`` (the TUI's first frame waits for this)."""
    p = _Parser(
        prog="nflab",
        description="A model of Linux netfilter conntrack and NAT that shows why a "
        "Docker host answers an INVALID packet with a RST.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"nflab {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    w = sub.add_parser("walkthrough", help="the seed incident at the conntrack level, step by step")
    w.add_argument("--kernel", type=kernel_arg, default="el7", help=f"{KERNEL_HELP} (default el7)")
    w.add_argument(
        "--be-liberal", action="store_true", help="set net.netfilter.nf_conntrack_tcp_be_liberal=1"
    )
    tui = sub.add_parser("tui", help="the walkthrough in the terminal (also: nflab with no arguments)")
    tui.add_argument("scenario", nargs="?", help="built-in scenario, scenario file or crafted case file")
    tui.add_argument("--kernel", type=kernel_arg, help=f"{KERNEL_HELP} (default: the file's)")
    tui.add_argument("--fix", choices=("none", "drop-invalid", "be-liberal"), help="apply one of the fixes")
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
    serve = sub.add_parser("serve", help="serve the walkthrough to web browsers (textual-serve)")
    serve.add_argument("scenario", nargs="?", help="built-in scenario, scenario file or crafted case file")
    serve.add_argument("--host", default="localhost", help="address to listen on (default localhost)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    run = sub.add_parser(
        "run", help="run a scenario (built-in name or TOML/JSON file) and print its timeline"
    )
    run.add_argument("scenario", help="built-in scenario name (e.g. seed-incident) or a scenario file")
    run.add_argument("--kernel", type=kernel_arg, help=f"{KERNEL_HELP} (default: the scenario's)")
    run.add_argument(
        "--fix",
        choices=tuple(FIXES),
        default="none",
        help="apply a fix (default none): drop-invalid, be-liberal, random-fully, bigger-table "
        "(host rules or sysctls); single-request-reopen, conntrack-delete (a story's workload or actions)",
    )
    run.add_argument(
        "--out",
        default="nflab-out",
        metavar="DIR",
        help="where the two captures (host-eth0.pcap, ctr-eth0.pcap) go (default ./nflab-out)",
    )
    run.add_argument(
        "--show",
        action="append",
        choices=("iptables", "conntrack", "dmesg"),
        default=[],
        help="after the timeline also print the host's iptables-save -c, conntrack -L or dmesg (repeatable)",
    )
    r = sub.add_parser(
        "replay",
        help="replay a crafted-packet case file in the model (the kernel-check contract)",
        description="Replay a case (a built-in case name or a case file): a header naming the "
        "kernel, sysctls and rules, then one line per packet (--json: one object per packet, no header).",
    )
    r.add_argument("file", help="case file (JSON, or TOML with the same schema)")
    r.add_argument("--json", action="store_true", help="one JSON object per input packet")
    if full:
        from sim import doctor
        from sim.kernel import check
        from sim.pcap import command as pcap
        from sim.report import exercises, figures, grade

        for module in (check, figures, exercises, grade, pcap, doctor):
            module.add_subcommand(sub)
    k = sub.add_parser(
        "kernels",
        help="the kernel profiles and their changelog; --matrix: what each does with each packet class",
    )
    k.add_argument(
        "--matrix",
        action="store_true",
        help="replay a crafted case per packet class on every profile, with each fix, and tabulate",
    )
    k.add_argument("--json", action="store_true", help="print one JSON object")
    d = sub.add_parser(
        "diff-kernels",
        help="fuzz for conversations two profiles track differently; shrink each to a minimal case",
        description="Generate conversations (hypothesis), find those on which kernel profiles A and "
        "B differ in verdict or TCP state, shrink each distinct difference to a minimal case file. "
        "Exit 0: no difference, 1: differences found, 2: bad input, 130: interrupted.",
    )
    d.add_argument("a", metavar="A", help="a kernel profile (see nflab kernels)")
    d.add_argument("b", metavar="B", help="another kernel profile")
    d.add_argument(
        "--fuzz", type=int, default=300, metavar="N", help="conversations per search round (default 300)"
    )
    d.add_argument("--seed", type=int, default=0, metavar="S", help="hypothesis seed (default 0)")
    d.add_argument(
        "--out",
        default="diff-kernels-out",
        metavar="DIR",
        help="where minimal cases go (default ./diff-kernels-out)",
    )
    d.add_argument(
        "--races",
        action="store_true",
        help="fuzz racing cases (race: prev; clashes, NAT ports, early drop) instead of conversations",
    )
    d.add_argument(
        "--datagrams",
        action="store_true",
        help="fuzz UDP and ICMP echo exchanges (timeouts, ASSURED) instead of conversations",
    )
    d.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    b = sub.add_parser("bench", help="measure the model's throughput and memory on this machine")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    c = sub.add_parser(
        "completion", help='print a shell completion script (bash): eval "$(nflab completion bash)"'
    )
    c.add_argument("shell", choices=("bash",), help="the shell")
    return p


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    parser = _build(full=bool(args_in) and args_in[0] not in ("tui", "serve"))
    args = parser.parse_args(argv)
    if args.command == "walkthrough":
        from sim.report.walkthrough import render

        print(render(args.kernel, args.be_liberal))
        return 0
    if args.command in (None, "tui"):
        scenario, kernel, fix = (getattr(args, key, None) for key in ("scenario", "kernel", "fix"))
        svg, (cols, rows), keys = (
            getattr(args, "svg", None),
            getattr(args, "size", (120, 40)),
            getattr(args, "press", ""),
        )
        # no terminal, and not a browser tab of nflab serve (textual-serve sets TEXTUAL_DRIVER
        # to its web driver and talks over pipes)
        web = "TEXTUAL_DRIVER" in os.environ
        if svg is None and not web and not (sys.stdin.isatty() and sys.stdout.isatty()):
            if scenario is not None:  # a bad file is still named first, in one line
                from tui.app import SourceError, make_app

                try:
                    make_app(scenario, kernel, fix or None)
                except SourceError as e:
                    print(f"nflab tui: {e}", file=sys.stderr)
                    return 2
            print(
                "nflab: the walkthrough TUI needs a terminal; without one: nflab run "
                f"{scenario or 'seed-incident'} (the timeline), nflab walkthrough, or nflab tui --svg FILE",
                file=sys.stderr,
            )
            return 2
        from tui.app import main as tui_main  # the composition root: sim itself never imports tui

        return int(
            tui_main(
                scenario,
                kernel,
                fix,
                quiz=getattr(args, "quiz", False),
                svg=svg,
                size=(cols, rows),
                keys=keys.split(),
            )
        )
    if args.command == "serve":
        from tui.serve import main as serve_main

        return int(serve_main(args.scenario, args.host, args.port))
    if args.command == "run":
        return _run(args.scenario, args.kernel, args.fix, args.out, args.show)
    if args.command == "completion":
        print(completion_script(parser))
        return 0
    if args.command == "replay":
        return _replay(args.file, args.json)
    if args.command == "kernels":
        return _kernels(args.matrix, args.json)
    if args.command == "diff-kernels":
        try:
            from sim.testing.diff import main as diff_main  # imports hypothesis
        except ImportError as e:
            print(f"nflab diff-kernels: needs hypothesis (pip install 'nflab[fuzz]'): {e}", file=sys.stderr)
            return 2
        return diff_main(args)
    if args.command in SUBCOMMAND_MODULES:
        module = importlib.import_module(SUBCOMMAND_MODULES[args.command])
        return int(module.main(args))
    assert args.command == "bench", args.command  # argparse allows no other
    from sim.bench import run_all

    figures: dict[str, object] = dict(run_all(lambda name: print(f"measuring {name} ...", file=sys.stderr)))
    from tui.bench import measure

    print("measuring tui_first_frame_s, tui_key_to_frame_ms ...", file=sys.stderr)
    figures.update(measure())
    from sim.pcap.bench import pcap_figures

    print("measuring pcap_packets_per_s, pcap_vs_tshark ...", file=sys.stderr)
    figures.update(pcap_figures())
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:<28} {value:>14,.1f}" if isinstance(value, float) else f"{name:<28} {value!s:>14}")
    return 0


def _run_story(story: Story, out: str) -> int:
    """``nflab run`` for a story scenario: its timeline, and the captures on both sides of the host;
    exit 0 whether or not the story succeeds (the timeline says which)."""
    from pathlib import Path

    from sim.report.story import render, write_captures
    from sim.scenario.story import run_story

    run = run_story(story)
    print(render(run))
    try:
        written = write_captures(run, Path(out))
    except OSError as e:
        print(f"nflab: {out}: {e.strerror}", file=sys.stderr)
        return 2
    for path, packets in written:
        print(f"capture {path}: {packets} packets")
    return 0


def _run(ref: str, kernel: str | None, fix: str, out: str, show: list[str]) -> int:
    from sim.net.netns import dmesg
    from sim.netfilter.conntrack import format_conntrack
    from sim.netfilter.iptables.save import iptables_save
    from sim.report.timeline import render, write_captures
    from sim.scenario.loader import InputError
    from sim.scenario.scenario import load_any, run_scenario
    from sim.scenario.story import Story

    problem = _unwritable_dir(Path(out))
    if problem:
        print(f"nflab: --out {out}: {problem}", file=sys.stderr)
        return 2
    try:
        sc = load_any(ref)
        if kernel is not None:
            sc = sc.with_kernel(kernel)
        if isinstance(sc, Story):
            return _run_story(sc.with_fix(fix), out)
        result = run_scenario(sc.with_fix(fix))
    except InputError as e:
        print(f"nflab: {e}", file=sys.stderr)
        return 2
    print(render(result))
    host = result.world.namespaces["host"]
    for what in show:
        print(f"--- host {what}")
        if what == "iptables":
            print(iptables_save(host.ruleset), end="")
        elif what == "conntrack":
            assert host.conntrack is not None
            for ct in host.conntrack.entries(result.world.clock.now):
                print(format_conntrack(ct, result.world.clock.now))
        else:
            print("\n".join(dmesg(host.log)))
    try:
        written = write_captures(result, Path(out))
    except OSError as e:
        print(f"nflab: {out}: {e.strerror}", file=sys.stderr)
        return 2
    for path, packets, rsts in written:
        print(f"capture {path}: {packets} packets, {rsts} RST")
    return 0


def _unwritable_dir(path: Path) -> str:
    """Why the captures could not be written into ``path`` (made if missing: the run would
    make it), or "": tried with a scratch file, so that the run does not fail at its end."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return ""


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


def _kernels(matrix: bool, as_json: bool) -> int:
    from sim.report.kernels import (
        compute_matrix,
        list_json,
        matrix_json,
        profiles,
        render_list,
        render_matrix,
        render_story_events,
        render_topics,
        story_events,
    )

    profs = profiles()
    if not matrix:
        print(json.dumps(list_json(profs)) if as_json else render_list(profs))
        return 0
    live = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"\rreplaying {done}/{total} cases\x1b[K" if done < total else "\r\x1b[K")
        sys.stderr.flush()

    cells = compute_matrix(profs, progress=progress if live else None)
    events = story_events(profs)
    if as_json:
        print(json.dumps({**matrix_json(cells), "stories": events}))
    else:
        print(render_matrix(cells))
        print()
        print(render_story_events(events))
        print()
        print(render_topics(profs))
    return 0


def _replay(path: str, as_json: bool) -> int:
    from sim.scenario.case import load_case_file
    from sim.scenario.loader import InputError, find_case
    from sim.scenario.replay import replay_stream

    try:
        file = find_case(path)
        case = load_case_file(file)
    except InputError as e:
        print(f"nflab: {e}", file=sys.stderr)
        return 2
    if not as_json:
        print(_replay_header(path, case))
    progress = _Progress(len(case["packets"])) if sys.stderr.isatty() else None
    same_terminal = progress is not None and sys.stdout.isatty()
    try:
        for i, obs in enumerate(replay_stream(case)):
            if progress is not None and same_terminal:
                progress.clear()
            print(json.dumps(obs) if as_json else _observation_line(i, obs))
            if progress is not None:
                progress.show(i + 1)
    except InputError as e:  # the model refuses the case's kernel, a sysctl or an iptables line
        if progress is not None:
            progress.clear()
        print(f"nflab: {file}: {e}", file=sys.stderr)
        return 2
    if progress is not None:
        progress.clear()
    return 0


def _replay_header(ref: str, case: dict[str, Any]) -> str:
    """Which kernel, sysctls and host rules the replay runs (text output only)."""
    kernel = str(case.get("kernel", DEFAULT_PROFILE))
    try:
        name = resolve_kernel(kernel, note=False).name
    except ValueError:
        name = kernel  # the replay itself refuses it, in one line
    shown = name if name == kernel else f"{name} (from {kernel})"
    lines = [f"nflab replay {Path(ref).name}: kernel {shown}, {len(case['packets'])} packets"]
    sysctls = case.get("sysctl") or {}
    lines += [f"  sysctl {k} = {v}" for k, v in sysctls.items()] or ["  sysctls: the kernel's defaults"]
    rules = case.get("iptables") or {}
    rules = rules if isinstance(rules, dict) else {}  # the replay refuses other shapes, in one line
    lines += [f"  {ns}: {r}" for ns, rs in rules.items() for r in rs] or ["  iptables: Docker's ruleset only"]
    return "\n".join(lines)


def _observation_line(i: int, obs: dict[str, Any]) -> str:
    emitted = ", ".join(_emitted_text(e) for e in obs["emitted"])
    tracked = (
        f"window {obs['window']}, state {obs['tcp_state']}"
        if obs.get("proto", "tcp") == "tcp"
        else f"{obs['proto']}, entry {' '.join(obs['ct_status'] or ['none'])}"
    )
    return (
        f"[{i}] ctstate {obs['ctstate']}, {tracked}, {obs['fate']}"
        + (f" as {obs['delivered_as']['src']} > {obs['delivered_as']['dst']}" if obs["delivered_as"] else "")
        + (f"; reason: {obs['reason']}" if obs["reason"] else "")
        + (f"; host emitted: {emitted}" if emitted else "")
    )


def _emitted_text(e: dict[str, Any]) -> str:
    if "icmp" in e:
        return f"ICMP type {e['icmp'][0]} code {e['icmp'][1]} to {e['to']}"
    if "flags" in e:
        return f"{e['flags']} seq {e['seq']} ack {e['ack']} to {e['to']}"
    return f"protocol {e['proto']} to {e['to']}"


class _Progress:
    """``done/total packets`` on the terminal's stderr, redrawn at most ten times a second."""

    def __init__(self, total: int) -> None:
        self.total, self.shown, self.next_draw = total, False, 0.0

    def show(self, done: int) -> None:
        now = time.monotonic()
        if now >= self.next_draw or done == self.total:
            self.next_draw = now + 0.1
            sys.stderr.write(f"\rreplay: {done}/{self.total} packets")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            self.shown = False


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
