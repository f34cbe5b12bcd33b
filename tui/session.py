"""Running sources for the walkthrough: open a scenario or case, run it, index its trace.

A :class:`Session` is one run of a scenario (or a crafted case) indexed for the screen: the
packets in order, each packet's events, the INVALID packets, the two capture panes and the
``conntrack -L`` line at every moment. A :class:`Cursor` is (packet position, step); every
move is a lookup in these indexes, so stepping backwards costs the same as forwards. What a
step *says* is in ``tui.rows``. No Textual here.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sim import api
from sim.api import TCPHDR_RST, CtState, Hook, InputError, NsRole, Packet, Source, Step, TraceEvent, say

if TYPE_CHECKING:  # the model's modules load in the worker that runs it, after the first frame
    from sim.api import ConntrackInfo, Run, StoryRun

DEFAULT_SCENARIO = "seed-incident"
SourceError = InputError  # a source that cannot be opened; the message is one line for the user
# how a scenario's remote treats a RST (the scenario's [remote] rst): the incident's remote
# accepts any RST for the connection; an RFC 5961 stack only one at exactly RCV.NXT
REMOTE_RST = ("any", "rfc5961")


# ---------------------------------------------------------------- reading the trace
# The only two places the TUI reads an event's payload and its sentence.


def ct(e: TraceEvent) -> ConntrackInfo | None:
    """The conntrack decision of a CONNTRACK event; None for any other step."""
    return e.ct if e.step is Step.CONNTRACK else None


def says(e: TraceEvent) -> str:
    """The model's own sentence for an event."""
    return say(e)


# ---------------------------------------------------------------- capture panes


@dataclass(frozen=True, slots=True)
class CapLine:
    t: float
    direction: str  # "in" / "out" as the device saw it
    pid: int
    pkt: Packet  # as this device saw it (NAT rewrites show in its addresses)
    rst: bool

    @property
    def addrs(self) -> str:
        """The addresses, "src.port > dst.port", as this device saw the packet."""
        p = self.pkt
        return f"{p.src}.{p.sport} > {p.dst}.{p.dport}"


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
    _texts: dict[int, tuple[str, str]] = field(default_factory=dict)

    def around(self, t: float) -> int:
        """Index of the first line at or after ``t``."""
        return bisect.bisect_left(self.times, t)

    def text(self, i: int, short: bool = False) -> str:
        """Line ``i`` as ``tcpdump -nS`` prints it (absolute numbers, as the journey and the
        bounds print them: tcpdump makes only ACK segments relative, so a bare RST would print
        absolute beside relative ACKs); ``short``: without addresses and options, for narrow
        panes. Formatted when first shown: a run has thousands of lines, a screen a few dozen."""
        done = self._texts.get(i)
        if done is None:
            c = self.lines[i]
            text = api.tcpdump_line(c.pkt, c.t, absolute=True)
            done = self._texts[i] = (text, _shorten(text, c.t, c.direction))
        return done[1] if short else done[0]


def _pane(result: api.Result, ns: str, dev: str, title: str) -> Pane:
    records = result.capture(ns, dev)
    lines = [CapLine(t, d, pid, pkt, bool(pkt.flags & TCPHDR_RST)) for t, d, pkt, pid in records]
    by_pid: dict[int, list[int]] = {}
    for i, c in enumerate(lines):
        by_pid.setdefault(c.pid, []).append(i)
    return Pane(title, lines, [c.t for c in lines], sum(1 for c in lines if c.rst), by_pid)


# ---------------------------------------------------------------- a session


def classify(ref: str) -> Source:
    """Decide whether ``ref`` is a scenario (name or file), a crafted-packet case or a capture."""
    return api.open_source(ref)


@dataclass(slots=True)
class Session:
    """One run, indexed for the screen."""

    source: Source
    kernel: str
    fix: str
    title: str
    run: Run | None
    events: list[TraceEvent]
    pids: list[int]  # packets in the order the host saw them (see index)
    steps: dict[int, list[int]]  # pid -> indexes into events
    pos: dict[int, int]  # pid -> position in pids
    invalid: list[tuple[int, int]]  # (position, step) of every CONNTRACK INVALID
    entries: list[int]  # the host's conntrack events with an entry (its conntrack -L line then)
    panes: tuple[Pane, Pane]
    focus: tuple[int, int]  # where the story is: see decisive()
    outcome: str
    arriving: list[tuple[int, int]] = field(default_factory=list)  # INVALID at host PREROUTING
    out_of_window: list[tuple[int, int]] = field(default_factory=list)  # failed a bound there
    late: frozenset[int] = frozenset()  # packets a late-ack trigger held back on the link
    rst_pids: list[int] = field(default_factory=list)
    pids_caused: dict[int, list[int]] = field(default_factory=dict)  # pid -> packets it caused
    notes: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (position, step) -> a story's why
    story: StoryRun | None = None  # a story scenario's run (sim/scenario/story.py)

    # -- lookups ------------------------------------------------------------------

    def packet_events(self, position: int) -> list[TraceEvent]:
        return [self.events[i] for i in self.steps[self.pids[position]]]

    def event(self, cur: Cursor) -> TraceEvent:
        return self.events[self.steps[self.pids[cur.packet]][cur.step]]

    def event_index(self, cur: Cursor) -> int:
        return self.steps[self.pids[cur.packet]][cur.step]

    def entry_at(self, cur: Cursor) -> str | None:
        """The connection's ``conntrack -L`` line as it stood at this step."""
        i = bisect.bisect_right(self.entries, self.event_index(cur)) - 1
        if i < 0:
            return None
        e = self.events[self.entries[i]]
        assert e.ct is not None and e.ct.entry is not None
        return api.format_entry(e.ct.entry, e.t)


@dataclass(frozen=True, slots=True)
class Cursor:
    packet: int  # position in Session.pids
    step: int  # index into that packet's events


def index(result: api.Result, outcome: str) -> Session:
    """Build every index the screen needs in one pass over the trace."""
    setup, run = result.setup, result.run
    events = result.events
    steps: dict[int, list[int]] = {}
    at_host: dict[int, int] = {}  # pid -> index of its first event in the host
    entries: list[int] = []
    for i, e in enumerate(events):
        steps.setdefault(e.pid, []).append(i)
        if e.ns == NsRole.HOST:
            at_host.setdefault(e.pid, i)
            if e.step is Step.CONNTRACK and e.ct and e.ct.entry:
                entries.append(i)
    # in the order the host saw them (the trace is in time order), so neither capture pane's
    # clock runs back from one packet to the next; a packet the host never saw, when it was sent
    pids = sorted(steps, key=lambda p: at_host.get(p, steps[p][0]))
    pos = {p: k for k, p in enumerate(pids)}
    invalid: list[tuple[int, int]] = []
    arriving: list[tuple[int, int]] = []  # INVALID as it arrives at the host (PREROUTING)
    out_of_window: list[tuple[int, int]] = []  # host PREROUTING window checks that failed a bound
    for k, pid in enumerate(pids):
        for s, i in enumerate(steps[pid]):
            d = ct(events[i])
            if d is None:
                continue
            at_host = events[i].ns == NsRole.HOST and events[i].hook is Hook.PRE_ROUTING
            if d.ctstate is CtState.INVALID:
                invalid.append((k, s))
                if at_host:
                    arriving.append((k, s))
            if at_host and d.check is not None and d.check.failed:
                out_of_window.append((k, s))
    focus = decisive(arriving, out_of_window)
    panes = (
        _pane(result, NsRole.HOST, "eth0", "host eth0 (uplink)"),
        _pane(result, NsRole.CONTAINER, "eth0", "container eth0"),
    )
    rst_pids = [c.pid for c in panes[0].lines if c.rst and c.direction == "out"]
    caused: dict[int, list[int]] = {}
    for pid in pids:
        cause = events[steps[pid][0]].cause
        if cause is not None:
            caused.setdefault(cause, []).append(pid)
    return Session(
        setup.source,
        setup.kernel,
        setup.fix,
        setup.title,
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
        arriving,
        out_of_window,
        result.late,
        rst_pids,
        caused,
    )


def decisive(invalid: list[tuple[int, int]], out_of_window: list[tuple[int, int]]) -> tuple[int, int]:
    """Where the story is: the first packet conntrack calls INVALID (on 6.1 that is not the late
    ACK, which it ignores); without one (a fix, be_liberal), the first that failed a window bound."""
    if invalid:
        return invalid[0]
    return out_of_window[0] if out_of_window else (0, 0)


def _run_outcome(run: Run) -> str:
    c = run.client
    rsts = len(run.rsts)
    rst = f"{rsts} host RST" + ("s" if rsts != 1 else "") if rsts else "no host RST"
    if run.completed:
        return f"upload complete, {rst}"
    return f"upload failed at {c.bytes_acked} B ({c.aborted_reason or 'stalled'}), {rst}"


@dataclass(frozen=True, slots=True)
class Plan:
    """A source loaded and checked, ready to run: what the app shows while the model runs."""

    source: Source
    kernel: str
    fix: str
    title: str
    start: Callable[[], Session]
    remote: str | None = None  # a scenario's [remote] rst policy ("any", "rfc5961"); None for a case
    fixes: tuple[str, ...] = ("none",)  # the fixes the source can take (api.Setup.fixes)

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        """What makes two runs the same run (the app's cache key)."""
        return (self.source.ref, self.kernel, self.fix, self.remote)

    def run(self) -> Session:
        try:
            return self.start()
        except ValueError as e:  # InputError (CaseError, ScenarioError) and the model's own
            raise SourceError(str(e)) from None


def plan(ref: str, kernel: str | None = None, fix: str | None = None, remote: str | None = None) -> Plan:
    """Load and check ``ref`` (scenario name or file, case or capture) for ``kernel`` with ``fix``
    and, for a scenario, the remote's RST policy ``remote`` (None keeps what the file says),
    without running it: bad input fails here, fast."""
    setup = api.load(ref, kernel, fix)
    if remote is not None and setup.scenario is not None:
        if remote not in REMOTE_RST:
            raise SourceError(f"remote: expected one of {', '.join(REMOTE_RST)}, got {remote!r}")
        setup = replace(setup, scenario=replace(setup.scenario, remote_rst=remote))

    def start() -> Session:
        result = setup.run()
        if result.story is not None:
            return _story_session(result, result.story)
        if result.run is not None:
            return index(result, _run_outcome(result.run))
        obs = result.observations
        rsts = sum(len(o.get("emitted") or []) for o in obs)
        what = "captured packets replayed" if setup.source.kind == "capture" else "crafted packets"
        return index(result, f"{len(obs)} {what}, {rsts} emitted by the host")

    remote_rst = setup.scenario.remote_rst if setup.scenario is not None else None
    return Plan(setup.source, setup.kernel, setup.fix, setup.title, start, remote_rst, setup.fixes)


def _story_session(result: api.Result, run: StoryRun) -> Session:
    """A story scenario (sim/scenario/story.py): the session opens on the packet the story turns
    on (its decisive one, or where the mechanism shows in a run that succeeds), at the host's
    step that decided it, with the story's why in plain words there (sim/report/story.py)."""
    from sim.api import key_event, key_moment, why_words

    d = run.decisive
    outcome = "the story succeeds" if d is None else f"the story fails: {run.event} ({d.failed})"
    session = index(result, outcome)
    session.story = run
    m = key_moment(run)
    if m is not None and m.pid is not None and m.pid in session.pos:
        events = session.packet_events(session.pos[m.pid])
        key = key_event(run, m)
        at = next((i for i, e in enumerate(events) if e is key), None)
        if at is None:
            at = next((i for i, e in enumerate(events) if e.ns == NsRole.HOST and e.step is Step.DROP), 0)
        session.focus = (session.pos[m.pid], at)
        session.notes[session.focus] = why_words(run, m)
    return session


def open_session(ref: str, kernel: str | None = None, fix: str | None = None) -> Session:
    """Load, check and run ``ref``: :func:`plan` then :meth:`Plan.run`."""
    return plan(ref, kernel, fix).run()


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


def play_next(s: Session, c: Cursor) -> Cursor | None:
    """Play's next cursor: the packet's next step; after its last step, the first packet it caused
    (the late ACK's RST); None when the story ends (a packet that caused nothing)."""
    if c.step + 1 < len(s.steps[s.pids[c.packet]]):
        return Cursor(c.packet, c.step + 1)
    kids = s.pids_caused.get(s.pids[c.packet])
    return Cursor(s.pos[kids[0]], 0) if kids else None
