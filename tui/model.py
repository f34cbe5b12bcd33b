"""The view model of the walkthrough: plain Python over the trace, no Textual.

A :class:`Session` is one run of a scenario (or a crafted case) indexed for the screen: the
packets in order, each packet's events, the INVALID packets, the two capture panes and the
``conntrack -L`` line at every moment. A :class:`Cursor` is (packet position, step); every
move is a lookup in these indexes, so stepping backwards costs the same as forwards.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from sim.net.world import World
from sim.packet import TCPHDR_RST, Packet
from sim.report.capture import tcpdump_line
from sim.report.sentences import say
from sim.scenario.case import CaseError, load_case_file
from sim.scenario.fixes import FIXES, fix_of, with_fix
from sim.scenario.loader import InputError, kind_of
from sim.scenario.replay import run_world
from sim.scenario.scenario import Run, Scenario, ScenarioError, load_scenario, run_scenario
from sim.trace import Step, TraceEvent

KERNELS = ("3.10", "6.1")
DEFAULT_SCENARIO = "seed-incident"


class SourceError(ValueError):
    """A scenario or case that cannot be opened; the message is one line for the user."""


# ---------------------------------------------------------------- verdict colours


class Tone(Enum):
    """The colour family of a verdict: the same everywhere on the screen."""

    ACCEPT = "accept"
    IGNORE = "ignore"
    INVALID = "invalid"
    DROP = "drop"
    INFO = "info"


_TONES = {
    "ACCEPT": Tone.ACCEPT,
    "TRANSLATED": Tone.ACCEPT,
    "UNCHANGED": Tone.ACCEPT,
    "BOUND": Tone.ACCEPT,
    "FORWARD": Tone.ACCEPT,
    "LOCAL": Tone.ACCEPT,
    "SOCKET": Tone.ACCEPT,
    "DELIVERED": Tone.ACCEPT,
    "UP": Tone.ACCEPT,
    "OUT": Tone.ACCEPT,
    "NEW": Tone.ACCEPT,
    "IGNORE": Tone.IGNORE,
    "INVALID": Tone.INVALID,
    "SKIP": Tone.INVALID,
    "DROP": Tone.DROP,
    "NO_SOCKET": Tone.DROP,
    "RST": Tone.DROP,
    "REJECT": Tone.DROP,
    "UNREACHABLE": Tone.DROP,
}


def tone(verdict: str | None) -> Tone:
    """The colour family for a verdict string from the trace."""
    if not verdict:
        return Tone.INFO
    return _TONES.get(verdict, Tone.INFO)


# ---------------------------------------------------------------- topology strip

STRIP = (
    ("ctr/eth0", "ctr eth0"),
    ("host/veth0", "veth0"),
    ("host/docker0", "docker0"),
    ("host", "host stack"),
    ("host/eth0", "eth0 uplink"),
    ("remote", "remote"),
)
_NS_NODE = {"ctr": 0, "host": 3, "remote": 5}


def strip_index(e: TraceEvent) -> int:
    """Where on the topology strip an event happens."""
    if e.ns == "host":
        if e.step is Step.BRIDGE or (e.dev == "docker0" and e.step in (Step.RECV, Step.XMIT)):
            return 2
        if e.step in (Step.RECV, Step.XMIT) and e.dev == "veth0":
            return 1
        if e.step in (Step.RECV, Step.XMIT) and e.dev == "eth0":
            return 4
        return 3
    return _NS_NODE.get(e.ns, 3)


# ---------------------------------------------------------------- capture panes


@dataclass(frozen=True, slots=True)
class CapLine:
    t: float
    direction: str  # "in" / "out" as the device saw it
    pid: int
    text: str  # the tcpdump -n line
    short: str  # the same without addresses and options, for narrow panes
    rst: bool


_ADDR = re.compile(r" IP (\S+) > (\S+): Flags")
_OPTS = re.compile(r", options \[[^\]]*\]")


def _shorten(line: str, t: float, direction: str) -> str:
    s = _ADDR.sub(" <" if direction == "in" else " >", line, count=1)
    s = f"{t:.6f}" + s[s.index(" ") :]
    s = _OPTS.sub("", s)
    return s.replace(", length ", " len ").replace(", ", " ")


@dataclass(slots=True)
class Pane:
    title: str
    lines: list[CapLine]
    times: list[float]
    rsts: int
    by_pid: dict[int, list[int]]  # pid -> its line indexes

    def around(self, t: float) -> int:
        """Index of the first line at or after ``t``."""
        return bisect.bisect_left(self.times, t)


def _pane(world: World, ns: str, dev: str, title: str) -> Pane:
    cap = world.captures.get((ns, dev))
    records = cap.records if cap is not None else []
    seqs: dict[Any, Any] = {}
    lines = []
    for t, direction, pkt, pid in records:
        text = tcpdump_line(pkt, t, relative_to=seqs)
        lines.append(
            CapLine(t, direction, pid, text, _shorten(text, t, direction), bool(pkt.flags & TCPHDR_RST))
        )
    by_pid: dict[int, list[int]] = {}
    for i, c in enumerate(lines):
        by_pid.setdefault(c.pid, []).append(i)
    return Pane(title, lines, [c.t for c in lines], sum(1 for c in lines if c.rst), by_pid)


# ---------------------------------------------------------------- a session


@dataclass(frozen=True, slots=True)
class Source:
    """What to open: a built-in scenario name, a scenario file, or a crafted case file."""

    ref: str
    kind: str  # "scenario" or "case"


def classify(ref: str) -> Source:
    """Decide whether ``ref`` is a scenario (name or file) or a crafted-packet case."""
    try:
        return Source(ref, kind_of(ref))
    except InputError as e:
        raise SourceError(str(e)) from None


@dataclass(slots=True)
class Session:
    """One run, indexed for the screen."""

    source: Source
    kernel: str
    fix: str
    title: str
    world: World
    run: Run | None
    events: list[TraceEvent]
    pids: list[int]  # packets in the order they entered the world
    steps: dict[int, list[int]]  # pid -> indexes into events
    pos: dict[int, int]  # pid -> position in pids
    invalid: list[tuple[int, int]]  # (position, step) of every CONNTRACK INVALID
    entries: list[tuple[int, str]]  # (event index, conntrack -L line)
    panes: tuple[Pane, Pane]
    focus: tuple[int, int]  # where to open: the first IGNORE/INVALID at the host
    outcome: str
    rst_pids: list[int] = field(default_factory=list)
    pids_caused: dict[int, list[int]] = field(default_factory=dict)  # pid -> packets it caused

    # -- lookups ------------------------------------------------------------------

    def packet_events(self, position: int) -> list[TraceEvent]:
        return [self.events[i] for i in self.steps[self.pids[position]]]

    def event(self, cur: Cursor) -> TraceEvent:
        return self.events[self.steps[self.pids[cur.packet]][cur.step]]

    def event_index(self, cur: Cursor) -> int:
        return self.steps[self.pids[cur.packet]][cur.step]

    def entry_at(self, cur: Cursor) -> str | None:
        """The connection's ``conntrack -L`` line as it stood at this step."""
        i = bisect.bisect_right(self.entries, (self.event_index(cur), "\uffff")) - 1
        return self.entries[i][1] if i >= 0 else None


@dataclass(frozen=True, slots=True)
class Cursor:
    packet: int  # position in Session.pids
    step: int  # index into that packet's events


def index(
    source: Source, kernel: str, fix: str, title: str, world: World, run: Run | None, outcome: str
) -> Session:
    """Build every index the screen needs in one pass over the trace."""
    events = world.trace.events
    steps: dict[int, list[int]] = {}
    entries: list[tuple[int, str]] = []
    for i, e in enumerate(events):
        steps.setdefault(e.pid, []).append(i)
        if e.step is Step.CONNTRACK and e.ns == "host":
            line = e.ct.entry if e.ct else None
            if line:
                entries.append((i, line))
    pids = sorted(steps, key=lambda p: (events[steps[p][0]].t, steps[p][0]))
    pos = {p: k for k, p in enumerate(pids)}
    invalid: list[tuple[int, int]] = []
    focus: tuple[int, int] | None = None
    for k, pid in enumerate(pids):
        for s, i in enumerate(steps[pid]):
            e = events[i]
            if e.step is not Step.CONNTRACK:
                continue
            if e.ct is not None and e.ct.ctstate == "INVALID":
                invalid.append((k, s))
            if (
                focus is None
                and e.ns == "host"
                and e.hook == "PREROUTING"
                and e.ct is not None
                and e.ct.window in ("IGNORE", "INVALID")
            ):
                focus = (k, s)
    if focus is None:
        focus = invalid[0] if invalid else (0, 0)
    panes = (
        _pane(world, "host", "eth0", "host eth0 (uplink)"),
        _pane(world, "ctr", "eth0", "container eth0"),
    )
    rst_pids = [c.pid for c in panes[0].lines if c.rst and c.direction == "out"]
    caused: dict[int, list[int]] = {}
    for pid in pids:
        cause = events[steps[pid][0]].cause
        if cause is not None:
            caused.setdefault(cause, []).append(pid)
    return Session(
        source,
        kernel,
        fix,
        title,
        world,
        run,
        events,
        pids,
        steps,
        pos,
        invalid,
        entries,
        panes,
        focus,
        outcome,
        rst_pids,
        caused,
    )


def _run_outcome(run: Run) -> str:
    c = run.client
    rsts = len(run.rsts)
    rst = f"{rsts} host RST" + ("s" if rsts != 1 else "") if rsts else "no host RST"
    if run.completed:
        return f"upload complete, {rst}"
    return f"upload failed at {c.bytes_acked} B ({c.aborted_reason or 'stalled'}), {rst}"


def _case_with(case: dict[str, Any], kernel: str, fix: str) -> dict[str, Any]:
    out = dict(case)
    out["kernel"] = kernel
    sysctl, host = with_fix(case.get("sysctl") or {}, (case.get("iptables") or {}).get("host", []), fix)
    out["sysctl"], out["iptables"] = sysctl, {"host": host} if host else {}
    if not out["iptables"]:
        out.pop("iptables")
    return out


def case_fix(case: dict[str, Any]) -> str:
    """Which of the two fixes a case file already carries."""
    return fix_of(case.get("sysctl") or {}, (case.get("iptables") or {}).get("host", []))


def scenario_fix(sc: Scenario) -> str:
    return sc.fix


def open_session(ref: str, kernel: str | None = None, fix: str | None = None) -> Session:
    """Run ``ref`` (scenario name or file, or case file) on ``kernel`` with ``fix``; None keeps
    what the file says."""
    source = classify(ref)
    if kernel is not None and kernel not in KERNELS:
        raise SourceError(f"kernel: expected one of {', '.join(KERNELS)}, got {kernel!r}")
    if fix is not None and fix not in FIXES:
        raise SourceError(f"fix: expected one of {', '.join(FIXES)}, got {fix!r}")
    if source.kind == "case":
        try:
            case = load_case_file(ref)
            k = kernel or str(case.get("kernel", "6.1"))
            f = fix or case_fix(case)
            world, obs = run_world(_case_with(case, k, f))
        except CaseError as e:
            raise SourceError(str(e)) from None
        rsts = sum(len(o.get("emitted") or []) for o in obs)
        outcome = f"{len(obs)} crafted packets, {rsts} emitted by the host"
        return index(source, k, f, str(case.get("name", Path(ref).stem)), world, None, outcome)
    try:
        sc = load_scenario(ref)
        k = kernel or sc.kernel
        f = fix or scenario_fix(sc)
        sc = sc.with_kernel(k)
        if f != scenario_fix(sc):
            sc = sc.with_fix(f)
        run = run_scenario(sc)
    except (ScenarioError, ValueError) as e:
        raise SourceError(str(e)) from None
    return index(source, k, f, sc.name, run.world, run, _run_outcome(run))


def cycle(values: Iterable[str], current: str) -> str:
    vals = list(values)
    return vals[(vals.index(current) + 1) % len(vals)] if current in vals else vals[0]


# ---------------------------------------------------------------- navigation


def next_step(s: Session, c: Cursor) -> Cursor:
    if c.step + 1 < len(s.steps[s.pids[c.packet]]):
        return Cursor(c.packet, c.step + 1)
    if c.packet + 1 < len(s.pids):
        return Cursor(c.packet + 1, 0)
    return c


def prev_step(s: Session, c: Cursor) -> Cursor:
    if c.step > 0:
        return Cursor(c.packet, c.step - 1)
    if c.packet > 0:
        return Cursor(c.packet - 1, len(s.steps[s.pids[c.packet - 1]]) - 1)
    return c


def next_packet(s: Session, c: Cursor) -> Cursor:
    return Cursor(min(c.packet + 1, len(s.pids) - 1), 0)


def prev_packet(s: Session, c: Cursor) -> Cursor:
    return Cursor(max(c.packet - 1, 0), 0)


def next_invalid(s: Session, c: Cursor) -> tuple[Cursor, bool]:
    """The next CONNTRACK INVALID step after the cursor; wraps to the first (second value True)."""
    if not s.invalid:
        return c, False
    k = bisect.bisect_right(s.invalid, (c.packet, c.step))
    if k < len(s.invalid):
        return Cursor(*s.invalid[k]), False
    return Cursor(*s.invalid[0]), True


def follow(s: Session, c: Cursor) -> Cursor | None:
    """From a packet to the first packet it caused (the RST), or back to its cause."""
    pid = s.pids[c.packet]
    kids = s.pids_caused.get(pid)
    if kids:
        return Cursor(s.pos[kids[0]], 0)
    cause = s.events[s.steps[pid][0]].cause
    if cause is not None and cause in s.pos:
        steps = s.steps[cause]
        last = next((k for k, i in enumerate(steps) if s.events[i].step is Step.RST), len(steps) - 1)
        return Cursor(s.pos[cause], last)
    return None


# ---------------------------------------------------------------- what each step says


@dataclass(frozen=True, slots=True)
class StepRow:
    where: str  # device
    hook: str  # hook and priority, or the step kind
    what: str  # table/chain/rule, conntrack state, NAT, route ...
    verdict: str
    tone: Tone


def step_row(e: TraceEvent) -> StepRow:
    dev = f"{e.ns}/{e.dev}" if e.dev else e.ns
    hook = f"{e.hook} {e.priority}" if e.hook and e.priority is not None else (e.hook or e.step.value)
    if e.step is Step.TABLE:
        what = f"{e.table} " + (f"rule {e.rule}" if e.rule else "policy")
    elif e.step is Step.CONNTRACK:
        ctstate = e.ct.ctstate if e.ct else None
        what = "conntrack" if ctstate in (None, e.verdict) else f"ct {ctstate}"
        old, new = (e.ct.old_state, e.ct.new_state) if e.ct else (None, None)
        if old and new and old != new:
            what += f" {old}>{new}"
    elif e.step is Step.NAT:
        what = "nat"
    elif e.step is Step.ROUTE:
        what = "route"
    elif e.step is Step.SOCKET:
        what = "socket"
    elif e.step is Step.RST:
        what = "send RST"
    else:
        what = e.step.value
    verdict = e.verdict or ""
    return StepRow(dev, hook, what, verdict, tone(verdict))


_EXTRA: dict[tuple[Step, str], str] = {
    (Step.NAT, "SKIP"): (
        "NAT only rewrites packets that carry a conntrack entry. This one has none, so its "
        "destination stays the host's own address instead of going back to the container."
    ),
    (Step.NAT, "TRANSLATED"): "The MASQUERADE binding rewrites the address, as for every tracked packet.",
    (Step.ROUTE, "LOCAL"): "",
    (Step.SOCKET, "NO_SOCKET"): (
        "The connection lives in the container, not on the host, so the host has no socket "
        "for this port. tcp_v4_rcv takes the no_tcp_socket path and answers with a RST, "
        "exactly as for a closed port."
    ),
    (Step.RST, "RST"): (
        "The RST goes out of eth0 to the remote. The container never sees it; the remote "
        "tears its end down while the container keeps retransmitting."
    ),
    (Step.CONNTRACK, "IGNORE"): (
        "Since Linux 6.1 this class of out-of-window segment is ignored: the entry stays "
        "attached, so NAT still translates the packet and it reaches the container."
    ),
}


def explain(s: Session, c: Cursor) -> list[str]:
    """The plain-words paragraphs for one step."""
    e = s.event(c)
    text = say(e)
    out = [text] if text else []
    if e.step is Step.SEND and e.before is not None:
        out = [f"{e.ns} sends {e.before.describe()}"]
        if e.cause is not None:
            out.append(f"Sent because of packet {e.cause}.")
    if e.ct is not None:
        d = e.ct
        if d.old_state and d.new_state and d.old_state != d.new_state:
            out.append(f"TCP state {d.old_state} -> {d.new_state}.")
        if d.window == "INVALID" and d.check is not None:
            failed = [b.name for b in d.check.bounds if not b.passed]
            if failed:
                out.append(
                    f"The segment fails bound {', '.join(failed)} of tcp_in_window(), so "
                    "tcp_packet() returns -NF_ACCEPT: accepted, but with no conntrack entry (INVALID)."
                )
    if e.step is Step.ROUTE and e.verdict == "LOCAL" and e.ns == "host":
        prev = [s.events[i] for i in s.steps[e.pid][: c.step]]
        if any(x.step is Step.NAT and x.verdict == "SKIP" for x in prev):
            out.append(
                "Because NAT did not reverse the destination, the packet looks as if it were "
                "for the host itself."
            )
    extra = _EXTRA.get((e.step, e.verdict or ""))
    if extra and (e.ns == "host" or e.step is not Step.SOCKET):
        out.append(extra)
    if e.step is Step.NAT and e.before is not None and e.after is not None and e.before != e.after:
        b, a = e.before, e.after
        if (b.src, b.sport) != (a.src, a.sport):
            out.append(f"source {b.src}:{b.sport} -> {a.src}:{a.sport}")
        if (b.dst, b.dport) != (a.dst, a.dport):
            out.append(f"destination {b.dst}:{b.dport} -> {a.dst}:{a.dport}")
    return out


@dataclass(frozen=True, slots=True)
class BoundRow:
    name: str
    rule: str
    limit: int
    value: int
    passed: bool


TRACKER_FIELDS = ("td_end", "td_maxend", "td_maxwin", "td_scale")


@dataclass(frozen=True, slots=True)
class WindowView:
    bounds: list[BoundRow]
    sender: int  # 0 original, 1 reply
    before: tuple[dict[str, int], dict[str, int]]
    after: tuple[dict[str, int], dict[str, int]]


def window_view(e: TraceEvent) -> WindowView | None:
    check = e.ct.check if e.ct is not None else None
    if check is None:
        return None
    bounds = [BoundRow(b.name, b.rule, b.limit, b.value, b.passed) for b in check.bounds]
    return WindowView(bounds, check.sender_dir, tuple(check.before), tuple(check.after))


def short_rule(rule: str) -> str:
    return (
        rule.replace("receiver.", "rcv.")
        .replace("sender.", "snd.")
        .replace("MAXACKWINDOW(sender)", "MAXACKWIN(snd)")
    )


def direction(s: Session, pid: int) -> tuple[int, int]:
    """(from, to) on the topology strip for a packet."""
    first = s.events[s.steps[pid][0]]
    src = _NS_NODE.get(first.ns, 3)
    pkt: Packet | None = first.before
    dst = src
    if pkt is not None:
        for node, data in s.world.graph.nodes(data=True):
            if data.get("addr") == pkt.dst:
                dst = {"ctr/eth0": 0, "host/docker0": 3, "host/eth0": 4, "remote/eth0": 5}.get(node, dst)
                break
    return src, dst


# ---------------------------------------------------------------- comparing two runs


def _key(e: TraceEvent) -> tuple[Any, ...]:
    return (round(e.t, 9), e.step, e.ns, e.dev, e.hook, e.priority, e.rule, e.verdict, e.before)


@dataclass(frozen=True, slots=True)
class Divergence:
    index: int  # first event index that differs (in the new run), -1 if identical
    old: TraceEvent | None
    new: TraceEvent | None


def diverge(old: Session, new: Session) -> Divergence:
    a, b = old.events, new.events
    n = min(len(a), len(b))
    for i in range(n):
        if _key(a[i]) != _key(b[i]):
            return Divergence(i, a[i], b[i])
    if len(a) == len(b):
        return Divergence(-1, None, None)
    return Divergence(n, a[n] if n < len(a) else None, b[n] if n < len(b) else None)


def _label(e: TraceEvent) -> str:
    r = step_row(e)
    return f"{r.where} {r.hook} {r.what}: {r.verdict}".strip()


def describe_change(old: Session, new: Session, what: str) -> tuple[str, Cursor | None]:
    """One line saying what changed between two runs, and the cursor of the first divergence."""
    d = diverge(old, new)
    head = (
        f"{what}: {old.outcome} -> {new.outcome}" if old.outcome != new.outcome else f"{what}: {new.outcome}"
    )
    if d.index < 0 or d.new is None:
        return head + "; the two runs are identical", None
    e = d.new
    cur = Cursor(new.pos[e.pid], new.steps[e.pid].index(d.index)) if e.pid in new.pos else None
    was = f"{_label(d.old)}" if d.old is not None else "nothing"
    return (
        f"{head}; runs first diverge at {e.t:.6f}s, packet {e.pid}, step {cur.step + 1 if cur else '?'}: "
        f"was {was}, now {_label(e)}",
        cur,
    )
