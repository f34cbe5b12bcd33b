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

from sim.api import TCPHDR_RST, NsRole, Step
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
    if route is not None and events[route].verdict in ("FORWARD", "LOCAL"):
        out.append(
            _q(
                s,
                ask,
                Cursor(pos, route),
                "Where does the host's routing send it?",
                ROUTES,
                0 if events[route].verdict == "FORWARD" else 1,
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


def questions(s: Session, fixed: dict[str, Session] | None = None) -> list[Question]:
    """Questions per decisive packet, each revealed at the step that answers it: the tracker's
    verdict, NAT, routing, the end, the RST and, in a scenario, whether an RFC 5961 remote would
    believe that RST and which capture shows it; then, per run in ``fixed`` (fix -> the same
    source run with that fix), where the packet would end with the fix."""
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
            if q.other is not None:  # a fix's run: why the packet ends there with the fix
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
