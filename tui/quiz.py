"""Quiz mode: at each decisive packet the student predicts what the host does before it is shown.

Questions are read off any session, so an instructor writes a new quiz as a case file: every
crafted packet of a case is asked about; in a scenario, the connection's first packet and every
packet that failed a window bound or was INVALID at the host. Per packet: the tracker's verdict,
whether NAT translates it, where it ends, and whether the host answers with a RST. A long case
(a replayed capture) is asked about its decisive packets only. No Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.api import TCPHDR_RST, NsRole, Step
from tui.rows import explain
from tui.session import Cursor, Session
from tui.session import ct as ct_of

MAX_ALL = 12  # a case with more packets (a capture) is asked about its decisive ones only
ENDS = ("the container", "the remote", "the host's own stack", "dropped by a rule")


@dataclass(frozen=True, slots=True)
class Question:
    ask: Cursor  # where the question is asked: the step before the answer is shown
    reveal: Cursor  # the step that shows the answer
    prompt: str
    choices: tuple[str, ...]
    answer: int  # index into choices


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
    """Positions of the packets the quiz asks about, in order."""
    crafted = [k for k, pid in enumerate(s.pids) if s.events[s.steps[pid][0]].cause is None]
    if s.run is None and len(crafted) <= MAX_ALL:  # a crafted case: every packet the case sends
        return crafted
    picked = {s.arriving[0][0]} if s.arriving else set()
    picked |= {k for k, _ in s.out_of_window}
    if s.pids:
        picked.add(0)
    return sorted(picked)


def questions(s: Session) -> list[Question]:
    """Up to four questions per decisive packet, each revealed at the step that answers it."""
    out: list[Question] = []
    for pos in packets(s):
        events = s.packet_events(pos)
        ct = next((k for k, e in enumerate(events) if e.step is Step.CONNTRACK and e.ns == NsRole.HOST), None)
        if ct is None:
            continue
        ask = Cursor(pos, max(ct - 1, 0))
        pkt = events[0].before
        head = f"packet {s.pids[pos]} ({pkt.describe() if pkt else '?'}) reaches the host's conntrack"
        window = ct_of(events[ct]).window  # type: ignore[union-attr]
        if window in ("ACCEPT", "IGNORE", "INVALID"):
            choices = ("ACCEPT", "IGNORE", "INVALID")
            out.append(
                Question(
                    ask, Cursor(pos, ct), f"{head}. The tracker's verdict?", choices, choices.index(window)
                )
            )
        nat = [k for k, e in enumerate(events) if e.step is Step.NAT and e.ns == NsRole.HOST]
        if nat:
            translated = next((k for k in nat if events[k].verdict == "TRANSLATED"), None)
            reveal = translated if translated is not None else nat[0]
            out.append(
                Question(
                    ask,
                    Cursor(pos, reveal),
                    "Does the host's NAT rewrite this packet's addresses?",
                    ("yes", "no"),
                    0 if translated is not None else 1,
                )
            )
        end, k = _end(s, pos)
        out.append(Question(ask, Cursor(pos, k), "Where does this packet end up?", ENDS, end))
        kids = s.pids_caused.get(s.pids[pos], [])
        rst = any(
            (p := s.events[s.steps[kid][0]].before) is not None and p.flags & TCPHDR_RST for kid in kids
        )
        last = len(events) - 1
        out.append(
            Question(
                ask, Cursor(pos, last), "Does the host answer it with a RST?", ("yes", "no"), 0 if rst else 1
            )
        )
    return _chain(out)


def _chain(items: list[Question]) -> list[Question]:
    """Ask each question of a packet where the previous one was revealed, so the cursor only moves
    forward and nothing is shown before it is asked."""
    out: list[Question] = []
    for q in items:
        prev = out[-1] if out and out[-1].ask.packet == q.ask.packet else None
        ask = prev.reveal if prev is not None else q.ask
        reveal = q.reveal if q.reveal.step >= ask.step else ask
        out.append(Question(ask, reveal, q.prompt, q.choices, q.answer))
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
        return [
            (q, a, explain(self.session, q.reveal))
            for q, a in zip(self.items, self.given, strict=False)
            if q.answer != a
        ]

    def report(self) -> str:
        """The score and, per miss, the right answer and why (Markdown for the result screen)."""
        lines = [f"# Quiz: {self.score} of {len(self.given)} right", ""]
        for q, a, why in self.misses():
            lines.append(f"**{q.prompt}** You said *{q.choices[a]}*; it is **{q.choices[q.answer]}**.")
            lines.append("")
            lines.extend(f"> {w}" for w in why)
            lines.append("")
        if not self.misses():
            lines.append("No misses.")
        return "\n".join(lines)
