"""Course exercises and their checker: ``nflab check EXERCISE FILE``.

Each exercise in ``docs/exercises/`` is a task (``NN-name.md``) and a starter file the student
edits (the solutions are in ``instructor/solutions/``, outside the site and the package); the
files are crafted-packet cases (JSON, :mod:`sim.scenario.case`) or scenarios (TOML,
:mod:`sim.scenario.scenario`). A checker runs the student's file in the model and judges what it
does, never comparing it with a solution: ``right`` or ``wrong: <why, in one line>``.
Exit status: 0 right, 1 wrong, 2 the file (or the exercise name) cannot be read.
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sim.errors import InputError
from sim.include.netfilter import Hook, TableName
from sim.netfilter.profiles import DEFAULT_PROFILE, resolve_kernel
from sim.packet import IpProto, Packet, parse_flags
from sim.scenario.case import CaseError, load_case_file
from sim.scenario.fixes import BE_LIBERAL
from sim.scenario.replay import replay_case, run_world
from sim.scenario.scenario import Scenario, ScenarioError, load_any, load_scenario, run_scenario
from sim.scenario.story import Expect, Story, StoryRun, run_story
from sim.scenario.story import Step as StoryStep
from sim.topology.roles import NsRole
from sim.trace import ConfirmInfo, ConfirmOutcome, Step, Why, WindowCheck

Verdict = tuple[bool, str]


class ExerciseError(InputError):
    """The exercise name or the file cannot be read; the message is one line."""


def right() -> Verdict:
    return True, "right"


def wrong(why: str) -> Verdict:
    return False, f"wrong: {why}"


# --------------------------------------------------------------------------- case exercises


def _load_case(path: Path) -> dict[str, Any]:
    try:
        return load_case_file(path)
    except CaseError as e:
        raise ExerciseError(str(e)) from None


def _replay(case: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return replay_case(case)
    except CaseError as e:
        raise ExerciseError(str(e)) from None


def _said(obs: dict[str, Any]) -> str:
    """``IGNORE ("reason")`` / ``ACCEPT``: the tracker's verdict on one packet, for messages."""
    return f'{obs["window"]} ("{obs["reason"]}")' if obs["reason"] else str(obs["window"])


def _host_rst(obs: dict[str, Any]) -> bool:
    return any("R" in e["flags"] and e["to"] == "remote" for e in obs["emitted"])


def check_ack_over_upper_bound(path: Path) -> Verdict:
    """01: the last packet is INVALID with "ACK is over (the) upper bound" and draws a host RST,
    on the kernel the case names (as ``nflab replay`` runs it): 6.1 logs "ACK is over upper bound
    N", 3.10 "ACK is over the upper bound" (both ``tcp_in_window()``'s bound III)."""
    case = _load_case(path)
    last = _replay(case)[-1]
    if last["window"] != "INVALID":
        return wrong(f"the last packet is {_said(last)}; it must be INVALID")
    if not str(last["reason"]).startswith("ACK is over"):
        return wrong(
            f'INVALID, but because "{last["reason"]}"; acknowledge data the container never sent (bound III)'
        )
    if not _host_rst(last):
        return wrong(
            f"INVALID for the right reason, but the host sent no RST (the packet ended {last['fate']})"
        )
    return right()


def _last_check(case: dict[str, Any], kernel: str) -> tuple[dict[str, Any], WindowCheck | None]:
    """Run ``case`` on ``kernel``: the last packet's observation and its window check, if any."""
    try:
        w, observations = run_world({**case, "kernel": kernel})
    except CaseError as e:
        raise ExerciseError(str(e)) from None
    sent = [e.pid for e in w.trace.events if e.step is Step.SEND and e.cause is None]
    check = next(
        (
            e.ct.check
            for e in w.trace.for_packet(sent[-1])
            if e.ct is not None and e.ns == NsRole.HOST and e.hook is Hook.PRE_ROUTING
        ),
        None,
    )
    return observations[-1], check if isinstance(check, WindowCheck) else None


def _bound_ii_kernels(case: dict[str, Any]) -> dict[str, str]:
    """The kernels 03 runs a case on and the verdict bound II alone must give on each: the kernel
    the case names (as ``nflab replay`` runs it) and one from the other side of 6.1's "ignore
    overly delayed tcp packets" change (``window_ignore``: IGNORE; before it: INVALID)."""
    try:
        named = resolve_kernel(str(case.get("kernel", DEFAULT_PROFILE)), note=False)
    except ValueError as e:
        raise ExerciseError(f"kernel: {e}") from None
    other = "3.10" if named.window_ignore else "6.1"
    verdict = {True: "IGNORE", False: "INVALID"}
    return {named.name: verdict[named.window_ignore], other: verdict[not named.window_ignore]}


def check_bound_ii(path: Path) -> Verdict:
    """03: only bound II fails on the last packet: IGNORE on 6.1 and later, INVALID before, on
    the kernel the case names and on one from the other side of the change."""
    case = _load_case(path)
    for kernel, verdict in _bound_ii_kernels(case).items():
        obs, check = _last_check(case, kernel)
        if check is None:
            return wrong(f"on {kernel} no window check ran on the last packet ({_said(obs)})")
        if check.failed != ["II"]:
            failed = ", ".join(check.failed) or "none"
            return wrong(f"on {kernel} the last packet fails bounds {failed}; exactly bound II must fail")
        if obs["window"] != verdict:
            return wrong(
                f"on {kernel} the last packet is {_said(obs)}; bound II alone should make it {verdict}"
            )
    return right()


def check_liberal_rst(path: Path) -> Verdict:
    """04: with be_liberal set, the last packet is a RST that conntrack still calls INVALID."""
    case = _load_case(path)
    if str(case.get("sysctl", {}).get(BE_LIBERAL, 0)) != "1":
        return wrong(f"set {BE_LIBERAL} = 1: the point is the RST that be_liberal does not save")
    packets = case["packets"]
    if not parse_flags(str(packets[-1].get("flags", ""))) & parse_flags("R"):
        return wrong("the last packet has no RST flag")
    last = _replay(case)[-1]
    if last["window"] != "INVALID":
        strict = _replay({**case, "sysctl": {**case.get("sysctl", {}), BE_LIBERAL: 0}})[-1]
        if strict["window"] != "INVALID":
            # e.g. a RST whose seq is exactly the peer's highest ACK: tcp_in_window() accepts it
            # and no RST test refuses it, whatever the sysctl says
            return wrong(
                f"this RST is {_said(last)} with or without be_liberal (it is in the window); "
                "send a plain RST whose seq is before the peer's highest ACK"
            )
        return wrong(f"be_liberal let this RST through: it is {_said(last)}")
    if last["reason"] != "invalid rst":
        # e.g. SYN+RST or FIN+RST: tcp_error() rejects the flag combination before any tracking
        return wrong(
            f'INVALID, but because "{last["reason"]}", not the "invalid rst" test of '
            "nf_conntrack_tcp_packet(); send a plain RST whose seq is before the peer's highest ACK"
        )
    return right()


# --------------------------------------------------------------------------- scenario exercise


@dataclass(frozen=True, slots=True)
class RuleShape:
    """What a checker needs of one ``iptables`` line: table, chain, INVALID match, target."""

    table: TableName
    chain: str
    invalid: bool
    target: str

    @classmethod
    def parse(cls, line: str) -> RuleShape:
        words = shlex.split(line)
        table, chain, target, invalid = "filter", "", "", False
        for i, word in enumerate(words[:-1]):
            nxt = words[i + 1]
            if word in ("-t", "--table"):
                table = nxt
            elif word in ("-A", "--append", "-I", "--insert"):
                chain = nxt
            elif word in ("-j", "--jump"):
                target = nxt
            elif word in ("--ctstate", "--state"):
                invalid = "INVALID" in nxt.split(",")
        return cls(TableName(table), chain, invalid, target)


def _load_scenario(path: Path) -> Scenario:
    try:
        return load_scenario(str(path))
    except ScenarioError as e:
        raise ExerciseError(str(e)) from None


def _same_world(sc: Scenario, seed: Scenario) -> bool:
    """The student kept the seed's addresses, upload, remote and triggers."""
    keys = ("sport", "dport", "upload_bytes", "upload_from", "remote_rst", "remote_unknown", "triggers")
    return all(getattr(sc, k) == getattr(seed, k) for k in keys) and (
        sc.topology.containers,
        sc.topology.host_ip,
        sc.topology.remote_ip,
    ) == (seed.topology.containers, seed.topology.host_ip, seed.topology.remote_ip)


# chains a forwarded packet crosses (Docker jumps to DOCKER-USER first from FORWARD)
FORWARD_PATH = ("FORWARD", "DOCKER-USER")
# the tables with an INPUT chain that runs after conntrack has set the packet's state
INPUT_TABLES = (TableName.FILTER, TableName.MANGLE)


def _run_message(sc: Scenario, kernel: str, shapes: list[RuleShape]) -> str | None:
    """Why the scenario still fails on ``kernel``, or None when the upload completes."""
    try:
        run = run_scenario(sc.with_kernel(kernel), trace=True)
    except ScenarioError as e:
        raise ExerciseError(str(e)) from None
    raw = any(s.table is TableName.RAW and s.invalid for s in shapes)
    # the RSTs that left the host: one an OUTPUT rule drops is seen by nobody (as nflab run says)
    tr = run.world.trace
    out = [pid for pid in run.rsts if any(e.ns != NsRole.HOST for e in tr.for_packet(pid))]
    if raw and (out or not run.completed):
        return (
            f"on {kernel} the upload fails: the raw table runs at priority -300, before conntrack "
            "(-200), so no packet has a conntrack entry yet and --ctstate INVALID matches every packet there"
        )
    if out:
        sent = tr.for_packet(out[0])[0]  # the RST's SEND; its RST event sits on the packet answered
        t, why = next((e.t, e.why) for e in tr.for_packet(sent.cause or out[0]) if e.step is Step.RST)
        if why is Why.REJECT_RESET:
            return (
                f"on {kernel} a REJECT rule answers the INVALID reply with its own RST at {t:.2f} s "
                "(--reject-with tcp-reset), and the remote accepts it as it accepted the stack's; DROP it"
            )
        if any(s.chain in FORWARD_PATH and s.invalid for s in shapes):
            return (
                f"on {kernel} the host still answers with a RST at {t:.2f} s: a FORWARD or DOCKER-USER rule "
                "never sees the INVALID reply, which is addressed to the host itself and so routed to INPUT"
            )
        return f"on {kernel} the host's stack still answers the INVALID reply with a RST at {t:.2f} s"
    if not run.completed:
        return f"on {kernel} the upload does not complete ({run.client.bytes_acked} bytes acknowledged)"
    return None


def check_drop_invalid(path: Path) -> Verdict:
    """02: the seed scenario plus one rule, in filter INPUT, that drops INVALID packets; the
    upload completes on both kernels."""
    sc, seed = _load_scenario(path), load_scenario("seed-incident")
    if not _same_world(sc, seed):
        return wrong(
            "keep the seed scenario's [topology], [upload], [remote] and [[trigger]] tables; only add a rule"
        )
    if str(sc.sysctl.get(BE_LIBERAL, 0)) != "0":
        return wrong("be_liberal is the other fix; this exercise asks for an iptables rule")
    try:
        shapes = [RuleShape.parse(line) for line in sc.rules]
    except ValueError as e:
        raise ExerciseError(f"{path}: iptables: {e}") from None
    for kernel in ("3.10", "6.1"):
        message = _run_message(sc, kernel, shapes)
        if message is not None:
            return wrong(message)
    drops = [s for s in shapes if s.target in ("DROP", "REJECT")]
    if any(s.chain == "INPUT" and not s.invalid for s in drops):
        return wrong(
            "an INPUT rule drops every packet to the host; match only -m conntrack --ctstate INVALID"
        )
    # mangle INPUT (NF_IP_PRI_MANGLE -150) and filter INPUT (0) both run at LOCAL_IN, after
    # conntrack (-200) gave the packet its state: either drops the INVALID reply in time
    if not any(
        s.table in INPUT_TABLES and s.chain == "INPUT" and s.invalid and s.target == "DROP" for s in drops
    ):
        return wrong("the upload completes, but the exercise asks for an INPUT rule that DROPs INVALID")
    return right()


# --------------------------------------------------------------------------- story exercises


def _load_story(path: Path) -> Story:
    try:
        loaded = load_any(str(path))
    except ScenarioError as e:
        raise ExerciseError(str(e)) from None
    if not isinstance(loaded, Story):
        raise ExerciseError(f"{path}: not a story scenario (it needs [[step]] tables, as the starter has)")
    return loaded


def _run_story(story: Story, kernel: str) -> StoryRun:
    try:
        return run_story(story.with_kernel(kernel))
    except InputError as e:
        raise ExerciseError(str(e)) from None


def _confirms(run: StoryRun) -> list[tuple[Packet, ConfirmInfo]]:
    """Every ``__nf_conntrack_confirm()`` decision at the host: the packet and what it decided."""
    return [
        (e.before, e.confirm)
        for e in run.world.trace.events
        if e.confirm is not None and e.before is not None and e.ns == NsRole.HOST
    ]


def _packets_of(story: Story) -> list[Any]:
    return [s.packet for s in story.steps if s.packet is not None]


def _same_packets(story: Story, builtin: str) -> bool:
    """The student kept the built-in story's packets (only rules were to be added)."""
    return _packets_of(story) == _packets_of(_load_story_name(builtin))


def _same_steps(story: Story, builtin: str) -> bool:
    """The student kept the built-in story's steps, packets and expectations (their words aside):
    a checker that reads ``run.succeeded`` must read the expectations the exercise set."""

    def steps(s: Story) -> list[StoryStep]:
        return [replace(step, say="") for step in s.steps]

    return steps(story) == steps(_load_story_name(builtin))


def _load_story_name(name: str) -> Story:
    loaded = load_any(name)
    assert isinstance(loaded, Story)
    return loaded


def check_race_old_kernels_lose(path: Path) -> Verdict:
    """05: a UDP packet loses its race to confirmation on el7 (insert_failed, dropped) and no
    packet loses on 5.10, where the clash is resolved for the reply direction only: two queries
    from one socket whose NAT differs (el7's nf_ct_resolve_clash() merges only equal NAT)."""
    story = _load_story(path)
    old = _confirms(_run_story(story, "el7"))
    lost = [(p, c) for p, c in old if c.outcome is ConfirmOutcome.CLASH_DROP]
    if not lost:
        if any(c.outcome is ConfirmOutcome.CLASH_MERGED for _p, c in old):
            return wrong(
                "on el7 the two packets raced but were merged: their NAT was the same "
                "(nf_ct_resolve_clash()); send them where DNAT picks a different endpoint for each"
            )
        return wrong(
            "on el7 no packet lost a race at confirmation: two packets with the same tuple must leave "
            'at once (a resolver step, or a packet step with race = "prev")'
        )
    if any(p.proto is not IpProto.UDP for p, _c in lost):
        return wrong(
            "a TCP packet lost the race: TCP has no allow_clash, so it loses on 5.10 too; "
            "race two UDP packets"
        )
    new = _confirms(_run_story(story, "5.10"))
    if any(c.outcome is ConfirmOutcome.CLASH_DROP for _p, c in new):
        return wrong(
            "on 5.10 a packet still loses its race (insert_failed): make the two packets' NAT differ"
        )
    if not any(c.outcome is ConfirmOutcome.CLASH_REPLY_ONLY for _p, c in new):
        return wrong(
            "on 5.10 no clash is resolved for the reply direction only (nf_ct_resolve_clash_harder())"
        )
    return right()


def check_masquerade_no_clash(path: Path) -> Verdict:
    """06: the snat-port-clash story with added rules only: both SYNs are answered on el7 and
    6.18 (neither loses its race at confirmation)."""
    story = _load_story(path)
    if not _same_steps(story, "snat-port-clash"):
        return wrong(
            "keep the starter's steps: the two containers' connects from port 39000, each expecting "
            "to connect; only add rules"
        )
    for kernel in ("el7", "6.18"):
        run = _run_story(story, kernel)
        lost = [p for p, c in _confirms(run) if c.outcome is ConfirmOutcome.CLASH_DROP]
        if lost:
            p = lost[0]
            return wrong(
                f"on {kernel} a SYN still loses its race at confirmation (insert_failed): both left as "
                f"{p.src}:{p.sport}, since the port search sees only confirmed entries"
            )
        if not run.succeeded:
            d = run.decisive
            return wrong(f"on {kernel} the story fails: {d.failed if d else '?'}")
    return right()


def check_early_drop(path: Path) -> Verdict:
    """07: nf_conntrack_max at most 4, more flows answered than it holds, and every one answered
    on el7 and 6.18 because early_drop() evicted an entry that was not ASSURED."""
    story = _load_story(path)
    limit = int(story.sysctl.get("net.netfilter.nf_conntrack_max", 0) or 0)
    if not 0 < limit <= 4:
        return wrong("keep net.netfilter.nf_conntrack_max small (at most 4): the point is a full table")
    answered = sum(1 for s in story.steps if s.expect is Expect.ANSWERED)
    if answered <= limit:
        return wrong(f"the table holds {limit}: more than {limit} steps must expect an answer")
    for kernel in ("el7", "6.18"):
        run = _run_story(story, kernel)
        if any("table full" in line for line in run.table.log):
            return wrong(
                f"on {kernel} the table is full and nothing may be evicted: every entry is ASSURED "
                "(a completed handshake, or UDP seen as a stream)"
            )
        if not run.succeeded:
            d = run.decisive
            return wrong(f"on {kernel} the story fails: {d.failed if d else '?'}")
        if not run.table.stats.early_drop:
            return wrong(f"on {kernel} the table never filled up (early_drop=0): send more flows")
    return right()


def check_delete_stale(path: Path) -> Verdict:
    """08: after the rule change the client's datagrams reach ctr2 on el7 and 6.18, and the
    conntrack step deleted no entry but the published port's (the DNS entry survives); without
    the student's conntrack steps the same story fails with the stale DNAT (so it is the step
    that fixed it, not a changed expectation, a dropped datagram or a delay past the timeout)."""
    story = _load_story(path)
    if not any(s.packet is not None and s.packet.pkt.dport == 53 for s in story.steps):
        return wrong("keep the starter's DNS query: it is the entry that must survive")
    if not any(s.kind == "conntrack" for s in story.steps):
        return wrong("add a conntrack step where the starter's comment says")
    without = replace(story, steps=tuple(s for s in story.steps if s.kind != "conntrack"))
    for kernel in ("el7", "6.18"):
        bare = _run_story(without, kernel)
        if bare.event != "stale DNAT":
            how = "succeeds" if bare.succeeded else f"fails with {bare.event}, not the stale DNAT,"
            return wrong(
                f"on {kernel} your story {how} without its conntrack step: keep the starter's "
                "datagrams, delays and expectations, and only add the step"
            )
        run = _run_story(story, kernel)
        now = run.world.clock.now
        if not any(ct.tuples[0][3] == 53 for ct in run.table.entries(now)):
            return wrong(
                f"on {kernel} the DNS entry is gone at the end: your conntrack step deleted it too "
                "(conntrack -F, or a -D that matches it); filter on the published port"
            )
        if not run.succeeded:
            stale = run.event == "stale DNAT"
            return wrong(
                f"on {kernel} the client's datagrams still go to ctr: the old entry keeps its DNAT; "
                "delete it after the rule change"
                if stale
                else f"on {kernel} the story fails: {run.decisive.failed if run.decisive else '?'}"
            )
    return right()


def check_private_address(path: Path) -> Verdict:
    """09: the pod-ip-leak story plus one rule, no be_liberal: no packet leaves the host's eth0
    with a container address on el7 and 6.18, and the handshake still reaches the server."""
    story = _load_story(path)
    if not _same_packets(story, "pod-ip-leak"):
        return wrong("keep the starter's steps: the handshake and the late FIN; only add a rule")
    if str(story.sysctl.get(BE_LIBERAL, 0)) != "0":
        return wrong("be_liberal is the other fix; this exercise asks for an iptables rule")
    try:
        shapes = [RuleShape.parse(line) for line in story.rules]
    except ValueError as e:
        raise ExerciseError(f"{path}: iptables: {e}") from None
    for kernel in ("el7", "6.18"):
        run = _run_story(story, kernel)
        ctr_net = story.topology.ctr_net
        leaked = [
            pkt
            for _t, _d, pkt, _pid in run.world.captures[(NsRole.HOST, "eth0")].records
            if ipaddress.ip_address(pkt.src) in ctr_net
        ]
        if leaked:
            p = leaked[0]
            where = (
                ": an INPUT rule never sees it, the FIN is forwarded to the server, not addressed to the host"
                if any(s.chain == "INPUT" and s.invalid for s in shapes)
                else ""
            )
            return wrong(f"on {kernel} {p.src}:{p.sport} > {p.dst}:{p.dport} still leaves eth0{where}")
        handshake = [m for m in run.moments if m.pid is not None and m.obs is not None][:3]
        if any(not str(m.obs.get("fate", "")).startswith("delivered") for m in handshake if m.obs):
            return wrong(f"on {kernel} your rule also stops the handshake: match only --ctstate INVALID")
    return right()


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True, slots=True)
class Exercise:
    name: str  # NN-slug, the stem of the files in docs/exercises/
    suffix: str  # ".json" (a case) or ".toml" (a scenario)
    checker: Callable[[Path], Verdict]


EXERCISES = (
    Exercise("01-ack-over-upper-bound", ".json", check_ack_over_upper_bound),
    Exercise("02-drop-invalid-in-input", ".toml", check_drop_invalid),
    Exercise("03-bound-ii-two-kernels", ".json", check_bound_ii),
    Exercise("04-the-rst-be-liberal-does-not-save", ".json", check_liberal_rst),
    Exercise("05-a-race-only-old-kernels-lose", ".toml", check_race_old_kernels_lose),
    Exercise("06-masquerade-that-does-not-clash", ".toml", check_masquerade_no_clash),
    Exercise("07-what-early-drop-may-evict", ".toml", check_early_drop),
    Exercise("08-delete-only-the-stale-entry", ".toml", check_delete_stale),
    Exercise("09-the-private-address-stays-home", ".toml", check_private_address),
)


def find_exercise(ref: str) -> Exercise:
    """By full name (``01-ack-over-upper-bound``), number (``01``, ``1``) or slug."""
    for ex in EXERCISES:
        number, _, slug = ex.name.partition("-")
        if ref in (ex.name, number, slug) or (ref.isascii() and ref.isdigit() and int(ref) == int(number)):
            return ex
    names = ", ".join(ex.name for ex in EXERCISES)
    raise ExerciseError(f"no exercise {ref!r} (exercises: {names})")


def check(exercise_name: str, path: str | Path) -> Verdict:
    """Run one exercise's checker on ``path``: ``(True, "right")`` or ``(False, "wrong: ...")``.
    Raises :class:`ExerciseError` when the name or the file cannot be read."""
    ex = find_exercise(exercise_name)
    path = Path(path)
    if not path.is_file():
        raise ExerciseError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
    return ex.checker(path)


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``check`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="check an exercise answer (docs/exercises)",
        description="Run your answer to a course exercise in the model. Prints 'right' or "
        "'wrong: <why>'. Exit 0: right, 1: wrong, 2: the file cannot be read.",
    )
    p.add_argument("exercise", help="exercise name or number, e.g. 01-ack-over-upper-bound or 1")
    p.add_argument("file", help="your case (JSON) or scenario (TOML) file")
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``check`` with parsed arguments; returns 0 (right), 1 (wrong) or 2 (unreadable)."""
    try:
        ok, message = check(args.exercise, args.file)
    except ExerciseError as e:
        print(f"nflab: {e}", file=sys.stderr)
        return 2
    print(message)
    return 0 if ok else 1
