"""Quiz mode: at each decisive packet the student predicts what the host does before it is shown.

Questions are read off any session, so an instructor writes a new quiz as a case file: every
crafted packet of a case is asked about; in a scenario, the decisive packets (INVALID or out of
window at the host). Per packet: the tracker's verdict (its three words defined before it is
asked), NAT, routing, where it ends, the RST; in a scenario also whether an RFC 5961 remote would
believe that RST and which capture shows it; and, with the runs of the fixes, where the packet
would end with each fix. The feedback names the step that shows the answer. A long case (a
replayed capture) is asked about its decisive packets only. No Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from sim.api import TCPHDR_RST, ConfirmOutcome, NsRole, Step, TraceVerdict, Why
from tui.rows import explain, remote_acked, step_row
from tui.session import Cursor, Session
from tui.session import ct as ct_of

MAX_ALL = 12  # a case with more packets (a capture) is asked about its decisive ones only
MAX_DECISIVE = 2  # in a scenario: the decisive packet and one more that failed a bound
ENDS = ("the container", "the remote", "the host's own stack", "dropped by a rule")
VERDICTS = ("ACCEPT", "IGNORE", "INVALID")
ROUTES = ("on to the container (FORWARD)", "to the host itself (LOCAL)")
CAPTURES = ("host eth0 only", "container eth0 only", "both", "neither")
FIX_WORDS = {
    "drop-invalid": "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP",
    "be-liberal": "nf_conntrack_tcp_be_liberal=1",
    "random-fully": "MASQUERADE --random-fully",
    "bigger-table": "nf_conntrack_max=262144",
    "single-request-reopen": "resolv.conf options single-request-reopen",
    "conntrack-delete": "conntrack -D -p udp after each rule change",
    "notrack": "-t raw -A PREROUTING -p udp --dport 53 -j NOTRACK",
    "kube-forward-drop": "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
    "none": "no fix",
}


@dataclass(frozen=True, slots=True)
class Question:
    ask: Cursor  # where the question is asked: the step before the answer is shown
    reveal: Cursor  # the step that shows the answer
    prompt: str
    choices: tuple[str, ...]
    answer: int  # index into choices
    shows: str = ""  # where the answer is on screen, for the feedback ("step 4, PRE -200 conntrack")
    terms: tuple[str, ...] = ()  # terms the question uses, defined before it is asked
    other: Session | None = None  # a fix's run: the answer and its why come from there
    subject: int = -1  # with ``other``: the packet asked about (its pid in both runs)
    why: tuple[str, ...] = ()  # the feedback's why, when the question brings its own


def _end(s: Session, pos: int) -> tuple[int, int]:
    """(index into ENDS, step) of where a packet's life ended."""
    events = s.packet_events(pos)
    for k in range(len(events) - 1, -1, -1):
        e = events[k]
        if e.step is Step.DROP:
            return 3, k
        if e.step is Step.SOCKET and e.ns == NsRole.HOST:
            return 2, k
        if e.step in (Step.DELIVER, Step.SOCKET):
            return (0 if e.ns == NsRole.CONTAINER else 1 if e.ns == NsRole.REMOTE else 2), k
    return 2, len(events) - 1


def packets(s: Session) -> list[int]:
    """Positions of the packets the quiz asks about, in order: every crafted packet of a short
    case; in a scenario (or a capture) the packets that failed a window bound at the host or
    arrived INVALID there, the decisive one first among them (not the handshake: it is no story)."""
    crafted = [k for k, pid in enumerate(s.pids) if s.events[s.steps[pid][0]].cause is None]
    if s.run is None and len(crafted) <= MAX_ALL:  # a crafted case: every packet the case sends
        return crafted
    picked = {k for k, _ in s.arriving[:1]} | {k for k, _ in s.out_of_window[:MAX_DECISIVE]}
    return sorted(picked)[:MAX_DECISIVE]


def _where(s: Session, c: Cursor) -> str:
    r = step_row(s.event(c))
    return f"step {c.step + 1} ({r.where} {r.hook} {r.what if r.what != r.hook else ''})".replace(" )", ")")


def _q(
    s: Session,
    ask: Cursor,
    reveal: Cursor,
    prompt: str,
    choices: tuple[str, ...],
    answer: int,
    terms: tuple[str, ...] = (),
) -> Question:
    return Question(ask, reveal, prompt, choices, answer, _where(s, reveal), terms)


def _packet_questions(s: Session, pos: int, fixed: dict[str, Session]) -> list[Question]:
    events = s.packet_events(pos)
    ct = next((k for k, e in enumerate(events) if e.step is Step.CONNTRACK and e.ns == NsRole.HOST), None)
    if ct is None:
        return []
    out: list[Question] = []
    ask = Cursor(pos, max(ct - 1, 0))
    pkt = events[0].before
    head = f"packet {s.pids[pos]} ({pkt.describe() if pkt else '?'}) reaches the host's conntrack"
    window = ct_of(events[ct]).window  # type: ignore[union-attr]
    if window in VERDICTS:
        out.append(
            _q(
                s,
                ask,
                Cursor(pos, ct),
                f"{head}. The tracker's verdict?",
                VERDICTS,
                VERDICTS.index(window),
                VERDICTS,
            )
        )
    nat = [k for k, e in enumerate(events) if e.step is Step.NAT and e.ns == NsRole.HOST]
    if nat:
        translated = next((k for k in nat if events[k].verdict == "TRANSLATED"), None)
        reveal = translated if translated is not None else nat[0]
        out.append(
            _q(
                s,
                ask,
                Cursor(pos, reveal),
                "Does the host's NAT rewrite its destination back to the container?",
                ("yes", "no"),
                0 if translated is not None else 1,
            )
        )
    route = next((k for k, e in enumerate(events) if e.step is Step.ROUTE and e.ns == NsRole.HOST), None)
    if route is not None and events[route].verdict in (TraceVerdict.FORWARD, TraceVerdict.LOCAL):
        out.append(
            _q(
                s,
                ask,
                Cursor(pos, route),
                "Where does the host's routing send it?",
                ROUTES,
                0 if events[route].verdict is TraceVerdict.FORWARD else 1,
            )
        )
    end, k = _end(s, pos)
    out.append(_q(s, ask, Cursor(pos, k), "Where does this packet end up?", ENDS, end))
    kids = s.pids_caused.get(s.pids[pos], [])
    rst_pid = next(
        (kid for kid in kids if (p := s.events[s.steps[kid][0]].before) is not None and p.flags & TCPHDR_RST),
        None,
    )
    last = len(events) - 1
    out.append(
        _q(
            s,
            ask,
            Cursor(pos, last),
            "Does the host answer it with a RST?",
            ("yes", "no"),
            0 if rst_pid is not None else 1,
        )
    )
    if rst_pid is not None and s.run is not None:
        rst_step = next((k for k, e in enumerate(events) if e.step is Step.RST), last)
        rst = events[rst_step].before
        rcv = remote_acked(s, s.event_index(Cursor(pos, rst_step)))
        if rst is not None and rcv is not None:
            out.append(
                _q(
                    s,
                    ask,
                    Cursor(pos, rst_step),
                    f"The RST's seq is {rst.seq}; the remote last acknowledged {rcv}. Would a remote "
                    "that follows RFC 5961 reset the connection for it?",
                    ("yes", "no: it drops it, or answers with a challenge ACK"),
                    0 if rst.seq == rcv else 1,
                    ("RCV.NXT",),
                )
            )
        rst_pos = s.pos[rst_pid]
        host, ctr = (bool(pane.by_pid.get(rst_pid)) for pane in s.panes)
        seen = CAPTURES.index(
            {(True, False): CAPTURES[0], (False, True): CAPTURES[1], (True, True): CAPTURES[2]}.get(
                (host, ctr), CAPTURES[3]
            )
        )
        out.append(
            _q(
                s,
                Cursor(pos, last),
                Cursor(rst_pos, len(s.steps[rst_pid]) - 1),
                "Which capture shows the host's RST?",
                CAPTURES,
                seen,
            )
        )
    for fix, run in fixed.items():
        if s.pids[pos] not in run.pos:
            continue
        end_fixed, k_fixed = _end(run, run.pos[s.pids[pos]])
        out.append(
            Question(
                ask if not out else out[-1].reveal,
                out[-1].reveal if out else ask,
                f"With the fix {fix} ({FIX_WORDS.get(fix, fix)}), where would this packet end up?",
                ENDS,
                end_fixed,
                f"press f until fix {fix}: {_where(run, Cursor(run.pos[s.pids[pos]], k_fixed))}",
                ("be_liberal",) if fix == "be-liberal" else (),
                run,
                s.pids[pos],
            )
        )
    return out


def questions(
    s: Session, fixed: dict[str, Session] | None = None, kernels: dict[str, Session] | None = None
) -> list[Question]:
    """Questions per decisive packet, each revealed at the step that answers it: the tracker's
    verdict, NAT, routing, the end, the RST and, in a scenario, whether an RFC 5961 remote would
    believe that RST and which capture shows it; then, per run in ``fixed`` (fix -> the same
    source run with that fix), where the packet would end with the fix. A story is asked about
    its own mechanism, the other kernel (``kernels``) and its fixes (:func:`story_questions`)."""
    if s.story is not None:
        return _chain(story_questions(s, fixed or {}, kernels or {}))
    out: list[Question] = []
    for pos in packets(s):
        out.extend(_packet_questions(s, pos, fixed or {}))
    return _chain(out)


def _chain(items: list[Question]) -> list[Question]:
    """Ask each question where the previous one was revealed, so the cursor only moves forward and
    nothing is shown before it is asked."""
    out: list[Question] = []
    for q in items:
        prev = out[-1] if out and out[-1].reveal.packet == q.ask.packet else None
        ask = prev.reveal if prev is not None else q.ask
        later = (q.reveal.packet, q.reveal.step) >= (ask.packet, ask.step)
        out.append(replace(q, ask=ask, reveal=q.reveal if later else ask))
    return out


@dataclass(slots=True)
class Quiz:
    """A run through the questions: the answers given, the score, and the why of every miss."""

    session: Session
    items: list[Question]
    given: list[int] = field(default_factory=list)

    @property
    def current(self) -> Question | None:
        return self.items[len(self.given)] if len(self.given) < len(self.items) else None

    def answer(self, choice: int) -> bool:
        q = self.current
        assert q is not None
        self.given.append(choice)
        return choice == q.answer

    @property
    def score(self) -> int:
        return sum(1 for q, a in zip(self.items, self.given, strict=False) if q.answer == a)

    def misses(self) -> list[tuple[Question, int, list[str]]]:
        """Each wrong answer: the question, the answer given, and the why at the revealing step."""
        out = []
        for q, a in zip(self.items, self.given, strict=False):
            if q.answer == a:
                continue
            if q.why:
                why = list(q.why)
            elif q.other is not None:  # a fix's run: why the packet ends there with the fix
                pos = q.other.pos[q.subject]
                end = _end(q.other, pos)[1]
                events = q.other.packet_events(pos)[: end + 1]
                table = [k for k, e in enumerate(events) if e.step is Step.TABLE and e.rule]
                why = [w for k in [*table[-1:], end] for w in explain(q.other, Cursor(pos, k))]
            else:
                why = explain(self.session, q.reveal)
            out.append((q, a, why))
        return out

    def report(self) -> str:
        """The score and, per miss, the right answer and why (Markdown for the result screen)."""
        lines = [f"# Quiz: {self.score} of {len(self.given)} right", ""]
        for q, a, why in self.misses():
            lines.append(
                f"**{q.prompt}** You said *{q.choices[a]}*; it is **{q.choices[q.answer]}** ({q.shows})."
            )
            lines.append("")
            lines.extend(f"> {w}" for w in why)
            lines.append("")
        if not self.misses():
            lines.append("No misses.")
        return "\n".join(lines)


# ---------------------------------------------------------------- a story's quiz

# What the host does with the packet a story turns on, one closed set per mechanism
RACE = (
    "dropped: its tuple is taken (insert_failed)",
    "merged into the entry that won the race",
    "inserted for the reply direction only",
    "confirmed as usual: no clash",
)
TABLE = (
    "dropped: table full, nothing may be evicted",
    "an entry that is not ASSURED is evicted",
    "the oldest entry is evicted",
    "there is room: a new entry as usual",
)
STALE = (
    "to ctr, by the binding stored in its entry",
    "to ctr2, by the new first DNAT rule",
    "dropped: its old container is gone",
    "to the host itself",
)


class Hook(Enum):
    """The mechanism a story turns on, which decides the question asked about its key packet."""

    RACE = "race"
    TABLE = "table"
    WINDOW = "window"
    STALE = "stale"


def _story_hook(s: Session, pos: int) -> tuple[Hook, int] | None:
    """The mechanism at the host for the packet at ``pos``, and the step that decided it."""
    events = s.packet_events(pos)
    for k, e in enumerate(events):
        if e.ns != NsRole.HOST:
            continue
        if e.confirm is not None and e.confirm.outcome is not ConfirmOutcome.INSERTED:
            return Hook.RACE, k
        if e.why in (Why.EARLY_DROP, Why.TABLE_FULL):
            return Hook.TABLE, k
    for k, e in enumerate(events):
        d = ct_of(e)
        if d is not None and e.ns == NsRole.HOST and d.check is not None:
            return Hook.WINDOW, k
    return None


def _answer_in(s: Session, pid: int, hook: Hook) -> tuple[int, int] | None:
    """(choice, step) for what the host did with packet ``pid`` in session ``s``, read off its
    trace in the terms of ``hook``; None when the packet is not in that run."""
    if pid not in s.pos:
        return None
    pos = s.pos[pid]
    events = s.packet_events(pos)
    host = [(k, e) for k, e in enumerate(events) if e.ns == NsRole.HOST]
    conntrack = next((k for k, e in host if e.step is Step.CONNTRACK and e.hook is not None), 0)
    if hook is Hook.RACE:
        outcomes = [ConfirmOutcome.CLASH_DROP, ConfirmOutcome.CLASH_MERGED, ConfirmOutcome.CLASH_REPLY_ONLY]
        for k, e in host:
            if e.confirm is not None:
                o = e.confirm.outcome
                return (outcomes.index(o) if o in outcomes else 3), k
        return 3, conntrack
    if hook is Hook.TABLE:
        for k, e in host:
            if e.why is Why.TABLE_FULL:
                return 0, k
            if e.why is Why.EARLY_DROP:
                return 1, k
        return 3, conntrack
    if hook is Hook.WINDOW:
        for k, e in host:
            d = ct_of(e)
            if d is not None and d.window in VERDICTS:
                return VERDICTS.index(d.window), k
        return None
    end = next((e for _k, e in reversed(host)), None)
    fate = next(
        (m.obs.get("fate") or "" for m in (s.story.moments if s.story else []) if m.pid == pid and m.obs), ""
    )
    if fate == "delivered:ctr":
        return 0, conntrack
    if fate == "delivered:ctr2":
        return 1, conntrack
    return (2 if fate.startswith("dropped") else 3), (len(events) - 1 if end is None else conntrack)


def _choices(hook: Hook) -> tuple[str, ...]:
    return {Hook.RACE: RACE, Hook.TABLE: TABLE, Hook.WINDOW: VERDICTS, Hook.STALE: STALE}[hook]


def _why_in(s: Session, pid: int, step: int) -> tuple[str, ...]:
    """The story's why for packet ``pid`` in ``s`` (sim/report/story.py), then the step's own."""
    from sim.api import why_words

    pos = s.pos[pid]
    out = list(s.notes.get((pos, step), ()))
    if not out and s.story is not None:
        m = next((m for m in s.story.moments if m.pid == pid), None)
        out = why_words(s.story, m) if m is not None else []
    return (*out, *(w for w in explain(s, Cursor(pos, step)) if w not in out))


def other_kernel(kernel: str) -> str:
    """The kernel a story's quiz compares with: one from the other end of the history."""
    return "6.18" if kernel in ("3.10", "el7", "4.19", "5.10", "5.15") else "el7"


def story_runs(
    ref: str, kernel: str, remote: str | None = None
) -> tuple[dict[str, Session], dict[str, Session]]:
    """The runs a story's quiz asks about: the story with each fix on ``kernel``, and without a
    fix on :func:`other_kernel` (run here, in the app's worker)."""
    from sim.api import FIXES
    from tui.session import plan

    fixed = {f: plan(ref, kernel, f, remote).run() for f in FIXES if f != "none"}
    other = other_kernel(kernel)
    return fixed, {other: plan(ref, other, "none", remote).run()}


def story_questions(s: Session, fixed: dict[str, Session], kernels: dict[str, Session]) -> list[Question]:
    """A story's quiz: what the host does with the packet the story turns on (its mechanism:
    the race to confirmation, the full table, the window, the stale binding); what the same
    packet meets on a kernel from the other end of the history; and, when the story fails, which
    fix makes it succeed (the answers read off the runs, each fix's why in the feedback)."""
    assert s.story is not None
    pos, step = s.focus
    pid = s.pids[pos]
    found = _story_hook(s, pos)
    hook, step = found if found is not None else (Hook.STALE, step)
    here = _answer_in(s, pid, hook)
    if here is None:
        return []
    pkt = s.packet_events(pos)[0].before
    what = pkt.describe() if pkt else f"packet {pid}"
    ask, reveal = Cursor(pos, max(step - 1, 0)), Cursor(pos, here[1])
    prompt = {
        Hook.RACE: f"Packet {pid} ({what}) reaches confirmation at the end of POSTROUTING. What happens?",
        Hook.TABLE: f"Packet {pid} ({what}) needs a new entry; nf_conntrack_max is reached. What happens?",
        Hook.WINDOW: f"Packet {pid} ({what}) reaches the host's conntrack. The tracker's verdict?",
        Hook.STALE: f"Packet {pid} ({what}) comes after the DNAT rule changed. Where does the host send it?",
    }[hook]
    choices = _choices(hook)
    terms = VERDICTS if hook is Hook.WINDOW else ()
    out = [
        Question(
            ask,
            reveal,
            prompt,
            choices,
            here[0],
            f"the why panel at {_where(s, reveal)}",
            terms,
            why=_why_in(s, pid, here[1]),
        )
    ]
    for kernel, other in kernels.items():
        there = _answer_in(other, pid, hook)
        if there is None:
            continue
        out.append(
            Question(
                reveal,
                reveal,
                f"And on kernel {kernel}, the same packet?",
                choices,
                there[0],
                f"press k until kernel {kernel}: the why panel at "
                + _where(other, Cursor(other.pos[pid], there[1])),
                other=other,
                subject=pid,
                why=_why_in(other, pid, there[1]),
            )
        )
    if s.story.succeeded:
        return out
    works = sorted(f for f, run in fixed.items() if run.story is not None and run.story.succeeded)
    fails = sorted(f for f, run in fixed.items() if run.story is not None and not run.story.succeeded)
    for fix in (f for f in s.story.story.fixes if f in works):
        options = tuple(sorted([fix, *fails[:3]]))
        run = fixed[fix]
        out.append(
            Question(
                reveal,
                reveal,
                f"Which fix makes this story succeed on {s.kernel}?",
                options,
                options.index(fix),
                f"press f until fix {fix}: the outcome in the header and the why panel at packet "
                f"{run.pids[run.focus[0]]}",
                other=run,
                subject=run.pids[run.focus[0]],
                why=(
                    f"{fix}: {FIX_WORDS.get(fix, fix)}.",
                    *_why_in(run, run.pids[run.focus[0]], run.focus[1]),
                    *(f"{f} does not: {fixed[f].outcome}." for f in options if f != fix),
                ),
            )
        )
    return out
