"""``nflab kernel-check``: the model's replay against the real kernel, packet by packet.

Both sides produce, per crafted packet, the object ``nflab replay --json`` prints
(:data:`FIELDS`): the model through ``sim.scenario.replay.replay_case``, the kernel through
:func:`sim.kernel.testbed.run_case` on one reused :class:`~sim.kernel.testbed.Testbed`.
:func:`compare` lists every field that differs; a disagreeing case is written out as a
minimal replayable case file (cut after its first disagreeing packet).

Cases are built-in names (``sim/scenario/cases/<name>.json``) or JSON files; ``--fuzz N --seed S``
generates conversations with the strategies of :mod:`sim.testing.strategies` (with ``--v2``,
UDP/ICMP/racing cases of :mod:`sim.testing.live_cases`) and, on the first disagreement, lets
hypothesis shrink it to a minimal one. The compared fields are :data:`FIELDS`, contract v2's
included; a NATed source port on a new binding is compared by class (:func:`port_class`).

Exit status: 0 when every packet agrees, 1 on any disagreement, 2 when the kernel side
cannot run here (the one-line :func:`sim.kernel.netns.skip_reason`) or the input is bad.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import InputError
from sim.kernel.netns import Interrupted, NetnsError, skip_reason
from sim.kernel.testbed import Testbed, run_case
from sim.netfilter.profiles import resolve_kernel
from sim.scenario.case import load_case_file, parse_case
from sim.scenario.fuzzcase import FIXES, MAX_PAYLOAD, conversation_to_case
from sim.scenario.loader import builtin_cases, find_case

V1_FIELDS = ("ctstate", "window", "reason", "tcp_state", "fate", "delivered_as", "emitted")
V2_FIELDS = ("proto", "ct_status", "ct_stats")  # contract v2's outputs
FIELDS = V1_FIELDS + V2_FIELDS
DEFAULT_OUT = "kernel-check-out"
FUZZ_MAX_STEPS = 20  # conversation length after the handshake; each packet costs a few ms
# Fuzzed cases are written with this gap between packets (the contract's default, 0.05 s, would
# make a 200-conversation live run take minutes); both the model and the kernel replay it.
FUZZ_DELAY_S = 0.001

Observations = list[dict[str, Any]]
Replay = Callable[[dict[str, Any]], Observations]


# ---------------------------------------------------------------- the case library


def load_case(ref: str) -> dict[str, Any]:
    """A built-in case name or a path to a case file -> the validated case dict."""
    path = find_case(ref)
    case = load_case_file(path)
    if not case.get("name"):
        case["name"] = path.stem
    return dict(case)


# ---------------------------------------------------------------- comparison


@dataclass(frozen=True, slots=True)
class Difference:
    """One field of one packet on which the model and the kernel disagree.

    ``packet`` is the packet's index in the case, or None when the model failed on the
    whole case (``field`` is then "exception").
    """

    case: str
    packet: int | None
    field: str
    model: Any
    kernel: Any

    def describe(self) -> str:
        where = "whole case" if self.packet is None else f"packet {self.packet}"
        return (
            f"{self.case} {where} {self.field}: model {json.dumps(self.model)}, "
            f"kernel {json.dumps(self.kernel)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "packet": self.packet,
            "field": self.field,
            "model": self.model,
            "kernel": self.kernel,
        }


def port_class(case: dict[str, Any], index: int, obs: dict[str, Any]) -> dict[str, Any]:
    """The observation with a NATed source port replaced by its class, as contract v2 compares
    it: on a packet that made a new binding (ctstate NEW), ``"kept"`` when it left with the
    source port it was sent with, ``"other"`` when NAT picked another (``get_unique_tuple()``:
    a free port, at random on newer kernels). Ports of established bindings stay exact."""
    delivered = obs.get("delivered_as")
    if obs.get("ctstate") != "NEW":
        return obs
    packets = case.get("packets") or []
    sent = packets[index].get("src") if index < len(packets) and isinstance(packets[index], dict) else None
    if not isinstance(delivered, dict) or not isinstance(sent, str) or ":" not in sent:
        return obs
    src = delivered.get("src")
    if not isinstance(src, str) or ":" not in src or src == sent:
        return obs
    addr, port = src.rsplit(":", 1)
    cls = "kept" if port == sent.rsplit(":", 1)[1] else "other"
    return {**obs, "delivered_as": {**delivered, "src": f"{addr}:{cls}"}}


def compare(
    case: dict[str, Any], model_obs: Observations, kernel_obs: Observations, fields: Sequence[str] = FIELDS
) -> list[Difference]:
    """Every field (of ``fields``, default :data:`FIELDS`) that differs, packet by packet.

    A field neither side reports is not compared (recordings made before contract v2 have no
    ``proto``, ``ct_status`` or ``ct_stats``); a field one side lacks is a difference. A
    translated source port is compared by class (:func:`port_class`). ``emitted`` is compared
    as a whole list (order and count matter). A packet one side has no observation for is one
    Difference with field "observation".
    """
    name = str(case.get("name", "case"))
    diffs: list[Difference] = []
    for i in range(max(len(model_obs), len(kernel_obs))):
        if i >= len(model_obs) or i >= len(kernel_obs):
            m = model_obs[i] if i < len(model_obs) else None
            k = kernel_obs[i] if i < len(kernel_obs) else None
            diffs.append(Difference(name, i, "observation", m, k))
            continue
        mo, ko = port_class(case, i, model_obs[i]), port_class(case, i, kernel_obs[i])
        for field in fields:
            if field not in mo and field not in ko:
                continue
            m, k = mo.get(field), ko.get(field)
            if m != k:
                diffs.append(Difference(name, i, field, m, k))
    return diffs


def minimal_case(case: dict[str, Any], diffs: Sequence[Difference]) -> dict[str, Any]:
    """The case cut after its first disagreeing packet and the packets racing it (``race:
    "prev"``: a held packet's fate is decided by its racers), the differences in its
    description."""
    indexes = [d.packet for d in diffs if d.packet is not None]
    whole = not indexes or len(indexes) < len(diffs)  # a model exception: keep every packet
    first = None if whole else min(indexes)
    if first is None:
        packets = list(case["packets"])
    else:
        end = first + 1
        while end < len(case["packets"]) and case["packets"][end].get("race") is not None:
            end += 1
        packets = case["packets"][:end]
    lines = [d.describe() for d in diffs if whole or d.packet == first]
    note = "kernel-check disagreement: " + "; ".join(lines)
    out = {k: v for k, v in case.items() if k not in ("packets", "description")}
    old = case.get("description")
    out["description"] = f"{old} | {note}" if old else note
    out["packets"] = packets
    return out


def write_minimal_case(case: dict[str, Any], diffs: Sequence[Difference], out_dir: Path) -> Path:
    """Write :func:`minimal_case` to ``out_dir/<name>.json`` and return the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{case.get('name', 'case')}.json"
    path.write_text(json.dumps(minimal_case(case, diffs), indent=2) + "\n")
    return path


def agreeing_packets(case: dict[str, Any], diffs: Sequence[Difference]) -> int:
    """How many of the case's packets have no difference at all."""
    if any(d.packet is None for d in diffs):
        return 0
    return len(case["packets"]) - len({d.packet for d in diffs})


# ---------------------------------------------------------------- running both sides


class KernelRunner:
    """Runs cases on one reused Testbed (rebuilt only when a case's topology differs)."""

    def __init__(self) -> None:
        self.testbed: Testbed | None = None

    def run(self, case: dict[str, Any]) -> Observations:
        topology, *_ = parse_case(case)
        if self.testbed is not None and self.testbed.topology != topology:
            self.close()
        if self.testbed is None:
            self.testbed = Testbed(topology).open()
        return run_case(case, self.testbed)

    def close(self) -> None:
        if self.testbed is not None:
            self.testbed.close()
            self.testbed = None

    def __enter__(self) -> KernelRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def model_replay() -> Replay:
    """The model's ``sim.scenario.replay.replay_case`` (imported on first use), run on the
    profile of the kernel it is compared with: ``resolve_kernel(uname -r)``, whatever the case
    names."""
    try:
        module = importlib.import_module("sim.scenario.replay")
    except ImportError as e:
        raise InputError(f"the model's replay is not available: {e}") from None
    try:
        kernel = resolve_kernel(os.uname().release, note=False).name
    except ValueError as e:
        raise InputError(f"no model profile for this kernel: {e}") from None

    def replay(case: dict[str, Any]) -> Observations:
        observations: Observations = module.replay_case({**case, "kernel": kernel})
        return observations

    return replay


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case run on both sides."""

    case: dict[str, Any]
    differences: list[Difference]
    file: Path | None = None

    @property
    def packets(self) -> int:
        return len(self.case["packets"])

    @property
    def agree(self) -> int:
        return agreeing_packets(self.case, self.differences)


def check_case(case: dict[str, Any], replay: Replay, kernel: KernelRunner) -> list[Difference]:
    """Run one case on both sides and compare; a model exception is one Difference."""
    kernel_obs = kernel.run(case)
    try:
        model_obs = replay(case)
    except Exception as e:  # the model failing on a valid case is a disagreement, not a crash
        text = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return [Difference(str(case.get("name", "case")), None, "exception", text, None)]
    return compare(case, model_obs, kernel_obs)


def _progress(i: int, n: int, name: str) -> None:
    print(f"[{i}/{n}] {name}", file=sys.stderr, flush=True)


def check_cases(
    cases: Sequence[dict[str, Any]],
    replay: Replay,
    kernel: KernelRunner,
    out_dir: Path,
    results: list[CaseResult] | None = None,
) -> list[CaseResult]:
    """Check every case; write each disagreeing one to ``out_dir``. Results are appended to
    ``results`` as they come (so an interrupted run still has them)."""
    results = [] if results is None else results
    for i, case in enumerate(cases, 1):
        _progress(i, len(cases), str(case.get("name")))
        diffs = check_case(case, replay, kernel)
        path = write_minimal_case(case, diffs, out_dir) if diffs else None
        results.append(CaseResult(case, diffs, path))
    return results


def case_strategy(seed: int) -> Any:
    """Hypothesis strategy of kernel-check cases: a well-formed or perturbed conversation
    (:mod:`sim.testing.strategies`) with one of :data:`FIXES`, named ``fuzz-seed<seed>``."""
    from hypothesis import strategies as st

    from sim.testing.strategies import conversations, perturbed_conversations

    def fits(conv: Any) -> bool:
        return all(s.length <= MAX_PAYLOAD for s in conv.segments)

    plain = conversations(max_steps=FUZZ_MAX_STEPS, max_segment=MAX_PAYLOAD).map(lambda c: (c, ()))
    perturbed = perturbed_conversations(max_steps=FUZZ_MAX_STEPS).filter(lambda cp: fits(cp[0]))

    def to_case(conv_done: tuple[Any, tuple[str, ...]], fix: str) -> dict[str, Any]:
        conv, done = conv_done
        what = f"perturbed: {', '.join(done)}" if done else "well-formed"
        return conversation_to_case(
            conv.segments,
            name=f"fuzz-seed{seed}",
            fix=fix,
            description=f"fuzz seed {seed}, {what}, fix {fix}",
            delay=FUZZ_DELAY_S,
        )

    return st.builds(to_case, st.one_of(plain, perturbed), st.sampled_from(FIXES))


def fuzz(
    n: int,
    seed: int,
    replay: Replay,
    kernel: KernelRunner,
    out_dir: Path,
    results: list[CaseResult] | None = None,
    v2: bool = False,
    keep_going: bool = False,
) -> list[CaseResult]:
    """Check ``n`` generated conversations; shrink the first disagreement and write it out.

    Generation and shrinking are hypothesis's (``find`` with ``database=None`` and a
    ``random.Random(seed)``), so the same seed on the same kernel and model gives the same
    minimal case. Results hold every example checked before the first disagreement, then
    the shrunk one; they are appended to ``results`` as they come. With ``keep_going`` all
    ``n`` examples are checked and every disagreeing one is written out, unshrunk (for counts).
    """
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    if v2:
        from sim.testing.live_cases import live_v2_cases

        strategy = live_v2_cases(seed=seed)
    else:
        strategy = case_strategy(seed)
    results = [] if results is None else results
    found = False
    checked = 0

    def disagrees(case: dict[str, Any]) -> bool:
        nonlocal found, checked
        diffs = check_case(case, replay, kernel)
        if not found:
            checked += 1
            _progress(checked, n, f"{len(case['packets'])} packets")
            if keep_going:
                path = write_minimal_case(case, diffs, out_dir / f"{checked:04d}") if diffs else None
                results.append(CaseResult(case, diffs, path))
                return False
            results.append(CaseResult(case, diffs))
            found = bool(diffs)
            if found:
                print("disagreement found; shrinking ...", file=sys.stderr, flush=True)
        return bool(diffs)

    config = settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    try:
        minimal = find(strategy, disagrees, settings=config, random=random.Random(seed))
    except NoSuchExample:
        return results
    diffs = check_case(minimal, replay, kernel)
    path = write_minimal_case(minimal, diffs, out_dir) if diffs else None
    results[-1] = CaseResult(minimal, diffs, path)
    return results


# ---------------------------------------------------------------- the subcommand


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kernel-check`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "kernel-check",
        help="compare the model with the real kernel (needs root)",
        description="Replay cases on the model and on the real kernel in network namespaces "
        "and report every field that differs. Exit 0: all agree, 1: a disagreement, 2: cannot run.",
    )
    p.add_argument("cases", nargs="*", metavar="CASE", help="a built-in case name or a JSON case file")
    p.add_argument("--all", action="store_true", help="every built-in case")
    p.add_argument("--fuzz", type=int, default=0, metavar="N", help="also check N generated conversations")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed for --fuzz (default 0)")
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="--fuzz checks all N cases and writes every disagreeing one (no shrinking)",
    )
    p.add_argument(
        "--v2",
        action="store_true",
        help="--fuzz contract v2 cases (UDP, ICMP, extra hosts, races) instead of TCP",
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where disagreeing cases are written (default ./{DEFAULT_OUT})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def breakdown(results: Sequence[CaseResult]) -> dict[str, list[int]]:
    """``[agree, packets]`` per protocol (``tcp``, ``udp``, ``icmp``), for the packets in a race
    (``race``: racing or held) and for the ``ct_stats`` field alone; a group no packet falls
    in is left out."""
    groups: dict[str, list[int]] = {}

    def count(group: str, agrees: bool) -> None:
        tally = groups.setdefault(group, [0, 0])
        tally[0] += agrees
        tally[1] += 1

    for r in results:
        whole = any(d.packet is None for d in r.differences)
        packets = r.case["packets"]
        for i, pkt in enumerate(packets):
            fields = {d.field for d in r.differences if d.packet == i}
            agrees = not whole and not fields
            count(str(pkt.get("proto", "tcp")), agrees)
            if "race" in pkt or (i + 1 < len(packets) and "race" in packets[i + 1]):
                count("race", agrees)
            count("ct_stats", not whole and not fields & {"ct_stats", "observation"})
    return {g: groups[g] for g in ("tcp", "udp", "icmp", "race", "ct_stats") if g in groups}


def summary(results: Sequence[CaseResult], groups: bool = False) -> str:
    """``N packets, M agree`` over all results; with ``groups``, after a line
    ``agree per group: tcp A/N, ...`` (the :func:`breakdown`)."""
    total = f"{sum(r.packets for r in results)} packets, {sum(r.agree for r in results)} agree"
    parts = ", ".join(f"{g} {a}/{n}" for g, (a, n) in breakdown(results).items())
    return f"agree per group: {parts}\n{total}" if groups and parts else total


def report_json(results: Sequence[CaseResult]) -> dict[str, Any]:
    """The ``--json`` object: totals and, per case, its differences and written file."""
    return {
        "packets": sum(r.packets for r in results),
        "agree": sum(r.agree for r in results),
        "by": breakdown(results),
        "cases": [
            {
                "case": r.case.get("name"),
                "packets": r.packets,
                "agree": r.agree,
                "differences": [d.to_json() for d in r.differences],
                "file": None if r.file is None else str(r.file),
            }
            for r in results
        ],
    }


def _fail(message: str) -> int:
    print(f"nflab kernel-check: {message}", file=sys.stderr)
    return 2


def _refs(args: argparse.Namespace) -> list[str]:
    refs = builtin_cases() if args.all else []
    return refs + [r for r in args.cases if r not in refs]


def main(args: argparse.Namespace) -> int:
    """Run ``kernel-check`` with parsed arguments; returns the exit status (0, 1 or 2)."""
    if args.fuzz < 0:
        return _fail(f"--fuzz must be >= 0, got {args.fuzz}")
    if not (args.cases or args.all or args.fuzz):
        return _fail("name cases or case files, or use --all or --fuzz N")
    refs = _refs(args)
    try:
        cases = [load_case(ref) for ref in refs]
        replay = model_replay()
    except InputError as e:
        return _fail(str(e))
    reason = skip_reason()
    if reason is not None:
        return _fail(reason)
    out_dir = Path(args.out)
    results: list[CaseResult] = []
    try:
        with KernelRunner() as kernel:
            check_cases(cases, replay, kernel, out_dir, results)
            if args.fuzz:
                fuzz(
                    args.fuzz,
                    args.seed,
                    replay,
                    kernel,
                    out_dir,
                    results,
                    v2=args.v2,
                    keep_going=args.keep_going,
                )
    except (NetnsError, ValueError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, InputError) and len(results) < len(refs):  # the kernel refused this case
            message = f"{find_case(refs[len(results)])}: {message}"
        return _fail(message)
    except KeyboardInterrupt as e:  # the namespaces are gone already (KernelRunner's __exit__)
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        print(
            f"nflab kernel-check: interrupted by {signal.Signals(signum).name} after {len(results)} cases",
            file=sys.stderr,
        )
        _report(results, args.json, bool(args.fuzz))
        return 128 + signum
    _report(results, args.json, bool(args.fuzz))
    return 1 if any(r.differences for r in results) else 0


def _report(results: Sequence[CaseResult], as_json: bool, groups: bool) -> None:
    if as_json:
        print(json.dumps(report_json(results)))
    else:
        for r in results:
            for d in r.differences:
                print(d.describe())
            if r.file is not None:
                print(f"  replayable case written to {r.file}")
        print(summary(results, groups))
