"""What each step of a session says on screen: rows, colours, words, the window check, changes.

Plain Python over a :class:`tui.session.Session`; the plain-words sentences about conntrack come
from ``sim.report.words`` so the CLI timeline tells the same. No Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sim.api import (
    HOOK_CHAIN,
    TCPHDR_RST,
    CtState,
    Hook,
    NsRole,
    Step,
    TcpState,
    TraceEvent,
    TraceVerdict,
    late_words,
    rule_of,
    untracked_words,
    window_words,
)
from tui.session import Cursor, Session, ct, diverge, says

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
    (NsRole.HOST, "host stack"),
    ("host/eth0", "eth0 uplink"),
    (NsRole.REMOTE, "remote"),
)
_NS_NODE = {NsRole.CONTAINER: 0, NsRole.HOST: 3, NsRole.REMOTE: 5}


def strip_index(e: TraceEvent) -> int:
    """Where on the topology strip an event happens."""
    if e.ns == NsRole.HOST:
        if e.step is Step.BRIDGE or (e.dev == "docker0" and e.step in (Step.RECV, Step.XMIT)):
            return 2
        if e.step in (Step.RECV, Step.XMIT) and e.dev == "veth0":
            return 1
        if e.step in (Step.RECV, Step.XMIT) and e.dev == "eth0":
            return 4
        return 3
    return _NS_NODE.get(e.ns, 3)


# ---------------------------------------------------------------- what each step says


@dataclass(frozen=True, slots=True)
class StepRow:
    where: str  # device
    hook: str  # hook and priority, or the step kind
    what: str  # table/chain/rule, conntrack state, NAT, route ...
    verdict: str
    tone: Tone


def step_row(e: TraceEvent, log_rule: tuple[str, int, str] | None = None) -> StepRow:
    """A journey row; ``log_rule`` (from :func:`rule_of`) names the rule behind a LOG line."""
    dev = f"{e.ns}/{e.dev}" if e.dev else e.ns
    chain = HOOK_CHAIN[e.hook] if e.hook is not None else None
    hook = f"{chain} {e.priority}" if chain and e.priority is not None else (chain or e.step.value)
    if e.step is Step.TABLE:
        what = f"{e.table} " + (f"rule {e.rule}" if e.rule else "policy")
    elif (d := ct(e)) is not None:
        what = "conntrack" if d.ctstate.name == e.verdict else f"ct {d.ctstate.name}"
        if d.old_state is not None and d.new_state is not None and d.old_state != d.new_state:
            what += f" {d.old_state.name}>{d.new_state.name}"
    elif e.step is Step.NAT:
        what = "nat"
    elif e.step is Step.ROUTE:
        what = "route"
    elif e.step is Step.SOCKET:
        what = "socket"
    elif e.step is Step.RST:
        what = "send RST"
    elif e.step is Step.LOG and log_rule is not None:
        what = f"{log_rule[0]} rule {log_rule[1]} LOG"
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
    (Step.SOCKET, "NO_SOCKET"): (
        "The connection lives in the container, not on the host, so the host has no socket "
        "for this port. tcp_v4_rcv takes the no_tcp_socket path and answers with a RST, "
        "exactly as for a closed port."
    ),
}


def remote_acked(s: Session, index: int) -> int | None:
    """What the remote had last acknowledged (its RCV.NXT then) before event ``index``: the ack
    of the last segment it sent."""
    for e in reversed(s.events[:index]):
        if e.step is Step.SEND and e.ns == NsRole.REMOTE and e.before is not None and e.before.ack_flag:
            return e.before.ack
    return None


def rst_words(s: Session, c: Cursor) -> list[str]:
    """Where the host's RST goes, and why the remote believes it (or not): RFC 5961 §3.2 against
    the scenario's assumption about the remote (``[remote] rst``)."""
    e = s.event(c)
    out = ["The RST goes out of eth0 to the remote. The container never sees it."]
    rst = e.before
    policy = s.run.scenario.remote_rst if s.run is not None else None
    rcv = remote_acked(s, s.event_index(c))
    if rst is None or policy is None or rcv is None:
        return out
    behind = (rcv - rst.seq) % 2**32
    where = f"{behind:,} bytes behind" if behind else "equal to"
    out.append(
        f"Would the remote believe it? The RST's seq {rst.seq} (tcp_v4_send_reset() copies the "
        f"answered packet's ack into it) is {where} the ack the remote last sent, {rcv}, so at "
        "least that far from the remote's RCV.NXT. RFC 5961 §3.2, in Linux since 3.6, resets a "
        "connection only for a RST at exactly RCV.NXT; one elsewhere in the window gets a "
        "challenge ACK, one outside it is dropped."
    )
    if policy == "any":
        out.append(
            "The incident's remote tore the connection down anyway, so this scenario assumes a "
            "remote behind a stateful middlebox (a load balancer, a firewall) that accepts any RST "
            'for the connection ([remote] rst = "any"): the remote forgets the upload while the '
            "container keeps retransmitting. Press r to re-run with an RFC 5961 remote."
        )
    else:
        out.append(
            'This run\'s remote follows RFC 5961 ([remote] rst = "rfc5961"): it does not reset for '
            "this RST. Press r for the incident's remote, which accepts any RST."
        )
    return out


def explain(s: Session, c: Cursor) -> list[str]:
    """The plain-words paragraphs for one step, the words first and the kernel's terms after."""
    e = s.event(c)
    text = says(e)
    out = [text] if text else []
    if e.step is Step.SEND and e.before is not None:
        out = [f"{e.ns} sends {e.before.describe()}"]
        if e.cause is not None:
            out.append(f"Sent because of packet {e.cause}.")
    if e.step is Step.RECV and s.run is not None and e.pid in s.late:
        sent = s.events[s.steps[e.pid][0]].t
        out.insert(0, late_words(sent, e.t, s.run.scenario.topology.link_delay))
    d = ct(e)
    if d is not None:
        if d.check is not None and d.window:  # the sysctls and log prefix the trace recorded
            out = window_words(d.check, d.window, bool(d.sysctls.tcp_be_liberal))
            if d.window is TraceVerdict.ACCEPT and len(out) > 1:  # be_liberal: the verdict's reason first
                out = [out[-1], *out[:-1]]
            if d.reason:
                out.append(f'The kernel logs: "{d.log_prefix}{d.reason}"')
            if s.run is not None and e.pid in s.late:  # why it came late: the time changed at step RECV
                sent = s.events[s.steps[e.pid][0]].t
                out.append(late_words(sent, e.t, s.run.scenario.topology.link_delay))
        elif d.ctstate is CtState.INVALID and d.old_state in (None, TcpState.NONE) and e.before is not None:
            out = [untracked_words(e.before.flags)]
            if e.cause is not None or s.events[s.steps[e.pid][0]].cause is not None:
                out.append(
                    "This is the host's own RST: it leaves with the host's address, so no NAT is "
                    "needed, and the remote receives it."
                    if e.before.flags & TCPHDR_RST
                    else "The host's stack made this packet; it leaves untranslated."
                )
        if d.old_state is not None and d.new_state is not None and d.old_state != d.new_state:
            out.append(f"TCP state {d.old_state.name} -> {d.new_state.name}.")
    rule = rule_of(e)
    if rule is not None:
        chain, k, text = rule
        what = "logs the packet and lets the chain go on" if e.step is Step.LOG else f"decided {e.verdict}"
        out.insert(0, f"{chain} rule {k} {what}:")
        out.insert(1, f"  iptables {text}")
    if e.step is Step.ROUTE and e.verdict == "LOCAL" and e.ns == NsRole.HOST:
        prev = [s.events[i] for i in s.steps[e.pid][: c.step]]
        if any(x.step is Step.NAT and x.verdict == "SKIP" for x in prev):
            out.append(
                "Because NAT did not reverse the destination, the packet looks as if it were "
                "for the host itself."
            )
    if e.step is Step.RST and e.ns == NsRole.HOST:
        out.extend(rst_words(s, c))
    extra = _EXTRA.get((e.step, e.verdict or ""))
    if e.step is Step.NAT and e.verdict == "SKIP" and e.hook in (Hook.LOCAL_OUT, Hook.POST_ROUTING):
        extra = (
            "A packet without a conntrack entry is never translated. This one leaves as the host "
            "made it, from the host's own address, so nothing needed rewriting."
        )
    if extra and (e.ns == NsRole.HOST or e.step is not Step.SOCKET):
        out.append(extra)
    out[:0] = s.notes.get((c.packet, c.step), ())  # a story's own why comes first
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
    d = ct(e)
    check = d.check if d is not None else None
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
    """(from, to) on the topology strip for a packet: where its path starts and where it ends."""
    path = [s.events[i] for i in s.steps[pid]]
    return strip_index(path[0]), strip_index(path[-1])


def _label(e: TraceEvent) -> str:
    r = step_row(e)
    return f"{r.where} {r.hook} {r.what}: {r.verdict}".strip()


def describe_change(old: Session, new: Session, what: str) -> str:
    """What changed between two runs: the outcomes, and the first step where they diverge."""
    d = diverge(old, new)
    head = (
        f"{what}: {old.outcome} -> {new.outcome}" if old.outcome != new.outcome else f"{what}: {new.outcome}"
    )
    if d.index < 0 or d.new is None:
        return head + "; the two runs are identical"
    e = d.new
    step = new.steps[e.pid].index(d.index) + 1 if e.pid in new.steps else "?"
    was = _label(d.old) if d.old is not None else "nothing"
    return (
        f"{head}; runs first diverge at {e.t:.6f}s, packet {e.pid}, step {step}: was {was}, now {_label(e)}"
    )
