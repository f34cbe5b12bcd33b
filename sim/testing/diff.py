"""``nflab diff-kernels A B``: conversations that two kernel profiles track differently, each
shrunk by hypothesis to a minimal replayable case.

Two profiles differ on a conversation when, at some segment, the tracker's verdict or the TCP
state after it differs (the log text's wording changed between versions, so it is not
compared, but it names the difference). Differences are grouped by a signature -- who sent
the segment, both verdicts, both states and both reasons with their numbers blanked -- and
each signature is searched and shrunk on its own: round *k* asks hypothesis for a
conversation whose signature is none of the *k - 1* found so far, so every finding is a
distinct behaviour change and its shrinking cannot drift into an earlier one. Run over
adjacent profiles, the findings are instances of the changelog entries between them -- those
the strategies reach (a difference that needs a very particular packet, such as a RST whose
sequence number answers a bogus SYN-ACK, may need many examples or none will find it).

Each minimal conversation, cut after its first differing segment, is written as a case file
(profile A's ``kernel``) and replayed in the docker-bridge world on both profiles, to confirm
that ``nflab replay`` shows the difference too.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from sim.netfilter.profiles import resolve_kernel
from sim.packet import format_flags
from sim.scenario.fuzzcase import MAX_PAYLOAD, conversation_to_case
from sim.testing.strategies import Conversation, closed_conversations, conversations, perturbed_conversations
from sim.testing.tracker import SegmentResult, track_conversation

MAX_STEPS = 10  # conversation length after the handshake: short conversations shrink fast

Signature = tuple[str, str | None, str | None, str | None, str | None, str, str]


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first segment on which profiles ``a`` and ``b`` differ, and what each did."""

    index: int
    a: SegmentResult
    b: SegmentResult

    @property
    def signature(self) -> Signature:
        """What kind of difference this is (numbers in the reasons blanked)."""
        return (
            self.a.segment.frm,
            _name(self.a.window),
            _name(self.b.window),
            self.a.tcp_state,
            self.b.tcp_state,
            _blank(self.a.reason),
            _blank(self.b.reason),
        )


def _name(action: Any) -> str | None:
    return None if action is None else str(action.name)


def _blank(reason: str | None) -> str:
    return "" if reason is None else re.sub(r"\d+", "N", reason)


def first_divergence(
    conv: Conversation, a: str, b: str, sysctl: Mapping[str, int] | None = None
) -> Divergence | None:
    """The first segment whose verdict or TCP state differs between profiles ``a`` and ``b``."""
    ra = track_conversation(conv, kernel=a, sysctl=sysctl)
    rb = track_conversation(conv, kernel=b, sysctl=sysctl)
    for i, (x, y) in enumerate(zip(ra, rb, strict=True)):
        if x.window != y.window or x.tcp_state != y.tcp_state:
            return Divergence(i, x, y)
    return None


@dataclass(slots=True)
class Finding:
    """One distinct difference: the minimal conversation (cut after the differing segment),
    where it differs, the case file written and whether the world replay confirms it."""

    conversation: Conversation
    divergence: Divergence
    shrunk: bool = True
    file: Path | None = None
    replay_confirms: bool | None = None

    def describe(self, a: str, b: str) -> str:
        d = self.divergence
        seg = d.a.segment
        who = "client" if seg.frm == "c" else "server"

        def side(name: str, r: SegmentResult) -> str:
            why = f' "{r.reason}"' if r.reason else ""
            return f"{name}: {_name(r.window)}{why}, state {r.tcp_state}"

        return (
            f"segment {d.index} ({who}, flags {_flags(seg.flags)}, seq {seg.seq} ack {seg.ack}, "
            f"len {seg.length}) -- {side(a, d.a)}; {side(b, d.b)}"
        )


def _flags(bits: int) -> str:
    return format_flags(bits) or "none"


@dataclass(slots=True)
class DiffRun:
    """Progress and results of one :func:`diff_kernels` run (partial when interrupted)."""

    a: str
    b: str
    examples: int
    seed: int
    tried: int = 0
    findings: list[Finding] = field(default_factory=list)
    interrupted: bool = False


def _strategy() -> st.SearchStrategy[Conversation]:
    """Perturbed open and closed conversations, and well-formed ones."""
    n, size = MAX_STEPS, MAX_PAYLOAD
    return st.one_of(
        perturbed_conversations(max_steps=n, max_segment=size).map(lambda cp: cp[0]),
        perturbed_conversations(max_steps=n, max_segment=size, closed=True).map(lambda cp: cp[0]),
        closed_conversations(max_steps=n, max_segment=size),
        conversations(max_steps=n, max_segment=size),
    )


def diff_kernels(
    run: DiffRun,
    sysctl: Mapping[str, int] | None = None,
    progress: Callable[[DiffRun, str], None] | None = None,
    check: Callable[[], None] | None = None,
) -> DiffRun:
    """Search ``run.examples`` conversations per round (hypothesis, seeded by ``run.seed``)
    for a difference not found yet, shrink it, repeat until a round finds none.

    KeyboardInterrupt stops the run: the finding being shrunk is kept, unshrunk
    (``shrunk=False``), and ``run.interrupted`` is set; the caller decides what to print.
    ``check`` runs before every conversation (:meth:`Interrupts.check` raises an interrupt
    that was lost on its way).
    """
    known: set[Signature] = set()
    config = settings(
        max_examples=run.examples,
        database=None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    strategy = _strategy()
    best: list[Conversation] = []  # the smallest new difference seen in the current round

    def differs(conv: Conversation) -> bool:
        if check is not None:
            check()
        run.tried += 1
        d = first_divergence(conv, run.a, run.b, sysctl)
        new = d is not None and d.signature not in known
        if new:
            best[:] = [conv]
        if progress is not None:
            progress(run, "shrinking" if best else "searching")
        return new

    while True:
        best.clear()
        try:
            minimal = find(strategy, differs, settings=config, random=random.Random(run.seed))
        except NoSuchExample:
            return run
        except KeyboardInterrupt:
            run.interrupted = True
            if best:
                run.findings.append(_finding(best[0], run, sysctl, shrunk=False))
            return run
        finding = _finding(minimal, run, sysctl, shrunk=True)
        known.add(finding.divergence.signature)
        run.findings.append(finding)


def _finding(conv: Conversation, run: DiffRun, sysctl: Mapping[str, int] | None, shrunk: bool) -> Finding:
    d = first_divergence(conv, run.a, run.b, sysctl)
    assert d is not None
    cut = Conversation(conv.segments[: d.index + 1], conv.isn_c, conv.isn_s, conv.wscale_c, conv.wscale_s)
    return Finding(cut, first_divergence(cut, run.a, run.b, sysctl) or d, shrunk)


def write_finding(
    finding: Finding, n: int, run: DiffRun, out_dir: Path, sysctl: Mapping[str, int] | None = None
) -> Path:
    """Write ``finding`` as ``out_dir/diff-A-B-N.json`` (kernel A) and replay it in the
    docker-bridge world on both profiles: ``replay_confirms`` says whether the replay's
    verdict or TCP state for the differing packet differs too."""
    from sim.scenario.replay import replay_case

    d = finding.divergence
    case = conversation_to_case(
        finding.conversation,
        name=f"diff-{run.a}-{run.b}-{n}",
        kernel=run.a,
        sysctl=sysctl,
        description=f"nflab diff-kernels {run.a} {run.b} --seed {run.seed}: "
        + finding.describe(run.a, run.b)
        + ("" if finding.shrunk else " (interrupted before shrinking finished)"),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{case['name']}.json"
    path.write_text(json.dumps(case, indent=2) + "\n")
    last = [replay_case({**case, "kernel": k})[d.index] for k in (run.a, run.b)]
    finding.replay_confirms = any(last[0][f] != last[1][f] for f in ("window", "tcp_state"))
    finding.file = path
    return path


# ---------------------------------------------------------------- the subcommand


class _Status:
    """One self-overwriting status line on a terminal's stderr; nothing otherwise."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.shown = False
        self.last = 0.0

    def __call__(self, run: DiffRun, phase: str) -> None:
        now = time.monotonic()  # the terminal's clock, for redrawing only
        if self.live and now - self.last >= 0.1:
            self.last = now
            found = len(run.findings)
            sys.stderr.write(
                f"\r{run.a} vs {run.b}: {run.tried} conversations tried, {found} difference"
                f"{'' if found == 1 else 's'} found, {phase}\x1b[K"
            )
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``diff-kernels`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    d: argparse.ArgumentParser = subparsers.add_parser(
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
    return d


MAX_FUZZ = 1_000_000  # conversations per round: about a day of CPU; more is a typo


class Interrupts:
    """Ctrl-C and SIGTERM while a search runs: the handler raises KeyboardInterrupt at once and
    remembers it, and :meth:`check` (run before every example) raises it again.

    A raise can be lost: Python runs a signal handler at the next bytecode boundary, and an
    exception raised inside a gc callback, a weakref callback or ``__del__`` is printed as
    "Exception ignored in ..." and dropped. hypothesis's ConjectureData installs such a gc
    callback (``gc_cumulative_time()`` in hypothesis/internal/conjecture/junkdrawer.py), so a
    signal that arrived during a garbage collection in ``find()`` was dropped and the search
    went on to its end (one run: 18 minutes of CPU until kill -9). Python hands such a lost
    raise to ``sys.unraisablehook``, which printed it as a traceback under the one-line result:
    while the search runs, a lost KeyboardInterrupt of ours is not printed (check() raises it
    again); anything else goes to the hook as before."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.caught = False
        self.previous: dict[int, Any] = {}
        self.unraisable = sys.unraisablehook

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        self.unraisable, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *_exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = self.unraisable

    def _handle(self, _signum: int, _frame: object) -> None:
        self.caught = True
        raise KeyboardInterrupt

    def _unraisable(self, info: Any) -> None:
        if not (self.caught and isinstance(info.exc_value, KeyboardInterrupt)):
            self.unraisable(info)

    def check(self) -> None:
        """Raise KeyboardInterrupt when a signal came, even if its first raise was lost."""
        if self.caught:
            raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    """Run ``diff-kernels``: 0 when no difference was found, 1 when some were, 2 on bad
    input, 130 when interrupted by Ctrl-C or SIGTERM (after printing what was found)."""
    with Interrupts() as interrupts:
        return _main(args, interrupts)


def _main(args: argparse.Namespace, interrupts: Interrupts) -> int:
    try:
        # a profile name or what `uname -r` prints, as everywhere a kernel is named
        args.a, args.b = (resolve_kernel(name).name for name in (args.a, args.b))
    except ValueError as e:
        print(f"nflab diff-kernels: {e}", file=sys.stderr)
        return 2
    if not 1 <= args.fuzz <= MAX_FUZZ:
        print(f"nflab diff-kernels: --fuzz must be 1..{MAX_FUZZ}, got {args.fuzz}", file=sys.stderr)
        return 2
    if args.races or args.datagrams:
        return _main_races(args, interrupts)
    run = DiffRun(args.a, args.b, args.fuzz, args.seed)
    status = _Status()
    out_dir = Path(args.out)
    try:
        diff_kernels(run, progress=status, check=interrupts.check)
    except KeyboardInterrupt:  # between rounds
        run.interrupted = True
    finally:
        status.clear()
    run.interrupted = run.interrupted or interrupts.caught  # a signal whose raise was lost
    try:
        for n, finding in enumerate(run.findings, 1):
            write_finding(finding, n, run, out_dir)
    except KeyboardInterrupt:
        run.interrupted = True
    except OSError as e:
        print(f"nflab diff-kernels: {out_dir}: {e.strerror}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_report_json(run)))
    else:
        for n, f in enumerate(run.findings, 1):
            print(f"difference {n}: {f.describe(run.a, run.b)}")
            note = "" if f.shrunk else ", not fully shrunk"
            seen = "nflab replay shows it too" if f.replay_confirms else "nflab replay does NOT show it"
            print(f"  minimal case: {f.file} ({len(f.conversation.segments)} packets{note}; {seen})")
        found = len(run.findings)
        print(
            f"{run.a} vs {run.b}: {found} distinct difference{'' if found == 1 else 's'} "
            f"in {run.tried} conversations (seed {run.seed})"
        )
    if run.interrupted:
        print(
            f"nflab diff-kernels: interrupted after {run.tried} conversations; "
            f"{len(run.findings)} difference(s) kept",
            file=sys.stderr,
        )
        return 130
    return 1 if run.findings else 0


def _main_races(args: argparse.Namespace, interrupts: Interrupts) -> int:
    """``--races``: racing cases instead of conversations (:mod:`sim.testing.races`);
    ``--datagrams``: UDP and ICMP echo exchanges (:mod:`sim.testing.datagrams`)."""
    from sim.testing.races import diff_races, first_race_divergence

    kw: dict[str, Any] = {"divergence": first_race_divergence}
    if args.datagrams:
        from sim.testing.datagrams import datagram_cases, first_datagram_divergence

        kw = {"cases": datagram_cases, "divergence": first_datagram_divergence, "kind": "datagram"}
    divergence = kw["divergence"]

    def checked(case: dict[str, Any], a: str, b: str) -> Any:
        interrupts.check()
        return divergence(case, a, b)

    kw["divergence"] = checked
    try:
        findings = diff_races(args.a, args.b, args.fuzz, args.seed, Path(args.out), **kw)
        interrupts.check()  # a signal whose raise was lost after the last example
    except OSError as e:
        print(f"nflab diff-kernels: {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nflab diff-kernels: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(
            json.dumps(
                {
                    "a": args.a,
                    "b": args.b,
                    "seed": args.seed,
                    "races": [
                        {"difference": f.describe(args.a, args.b), "file": str(f.file)} for f in findings
                    ],
                }
            )
        )
    else:
        for n, f in enumerate(findings, 1):
            print(f"difference {n}: {f.describe(args.a, args.b)}")
            print(f"  minimal case: {f.file} ({len(f.case['packets'])} packets)")
        what = "datagram" if args.datagrams else "race"
        print(f"{args.a} vs {args.b}: {len(findings)} distinct {what} differences (seed {args.seed})")
    return 1 if findings else 0


def _report_json(run: DiffRun) -> dict[str, Any]:
    return {
        "a": run.a,
        "b": run.b,
        "seed": run.seed,
        "fuzz": run.examples,
        "conversations": run.tried,
        "interrupted": run.interrupted,
        "differences": [
            {
                "segment": f.divergence.index,
                "from": f.divergence.a.segment.frm,
                run.a: _side_json(f.divergence.a),
                run.b: _side_json(f.divergence.b),
                "packets": len(f.conversation.segments),
                "shrunk": f.shrunk,
                "file": None if f.file is None else str(f.file),
                "replay_confirms": f.replay_confirms,
            }
            for f in run.findings
        ],
    }


def _side_json(r: SegmentResult) -> dict[str, Any]:
    return {"window": _name(r.window), "reason": r.reason, "tcp_state": r.tcp_state}
