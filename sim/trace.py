"""The one trace channel: every decision the model makes, with its reason and numbers.

Events are data: a :class:`Step`, a :class:`Why` and typed payloads, built with keyword
arguments only, and only when ``trace.enabled``; :mod:`sim.report.sentences` says them in words.
The CLI, the TUI, captures, the tests and the kernel comparison all read these events. Each
packet that enters the world gets a packet id (``pid``); a packet the world creates in answer
(a RST, a REJECT) carries the id of the packet that caused it (``cause``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING

from sim.include.netfilter import CtState, Hook, NatKind, TableName
from sim.include.nf_conntrack import CtDir, CtEntry
from sim.include.nf_conntrack_tcp import TcpState

if TYPE_CHECKING:
    from sim.packet import Packet


class Step(Enum):
    """What kind of decision an event records."""

    SEND = "send"  # a packet enters the world (crafted, or from an endpoint)
    XMIT = "xmit"  # leaves a device onto a link
    RECV = "recv"  # arrives on a device
    BRIDGE = "bridge"  # the bridge passes a frame up or out of a port
    CONNTRACK = "conntrack"  # nf_conntrack_in / confirm
    TABLE = "table"  # an iptables table's verdict
    NAT = "nat"  # a NAT hook: binding, translation, or skipped
    ROUTE = "route"  # fib lookup: LOCAL / FORWARD / UNREACHABLE
    SOCKET = "socket"  # tcp_v4_rcv's socket lookup
    RST = "rst"  # tcp_v4_send_reset / REJECT built a packet
    DELIVER = "deliver"  # handed to a socket or captured by a passive host
    DROP = "drop"  # the packet's life ends here
    LOG = "log"  # a kernel log line (LOG target, conntrack invalid log)


class Why(Enum):
    """What an event says happened, as data; :mod:`sim.report.sentences` says it in words.
    ``detail`` names what each one refers to."""

    CRAFTED = "crafted"  # SEND: a crafted frame from a passive end host's device
    STACK_SENDS = "stack-sends"  # SEND: the namespace's own TCP sends
    TCP_RESET = "tcp-reset"  # RST / SEND: tcp_v4_send_reset built the packet
    REJECT_RESET = "reject-reset"  # RST / SEND: REJECT --reject-with tcp-reset built it
    XMIT = "xmit"  # XMIT: out of a device
    RECV = "recv"  # RECV: arrives on a device
    BRIDGE_OUT = "bridge-out"  # BRIDGE: out of a port (detail: the bridge)
    BRIDGE_UP = "bridge-up"  # BRIDGE: up from a port to IP (detail: the port)
    NEIGH_UNRESOLVED = "neigh-unresolved"  # DROP (detail: the next hop)
    NO_LINK = "no-link"  # DROP
    LOST = "lost"  # DROP: the link lost it
    CAPTURED = "captured"  # DELIVER: a passive end host
    DELIVERED = "delivered"  # DELIVER: to a socket (detail: the socket)
    ROUTE_LOCAL = "route-local"  # ROUTE
    ROUTE_FORWARD = "route-forward"  # ROUTE (detail: the output device)
    NO_ROUTE = "no-route"  # DROP: ip_rcv found no route
    NOT_FORWARDING = "not-forwarding"  # DROP: not local and ip_forward is 0
    NO_ROUTE_OUT = "no-route-out"  # DROP: ip_local_out found no route
    TTL_EXCEEDED = "ttl-exceeded"  # DROP
    SOCKET_FOUND = "socket-found"  # SOCKET (detail: the socket)
    NO_SOCKET = "no-socket"  # SOCKET
    NO_UDP_SOCKET = "no-udp-socket"  # SOCKET: __udp4_lib_rcv found no socket (port unreachable follows)
    ICMP_RCV = "icmp-rcv"  # SOCKET: icmp_rcv took the message (an echo is answered)
    ICMP_SEND = "icmp-send"  # RST / SEND: icmp_send or icmp_reply built the packet
    FIREWALL = "firewall"  # DROP: a stateful firewall drops unknown connections
    BAD_CHECKSUM = "bad-checksum"  # DROP
    NO_RST_FOR_RST = "no-rst-for-rst"  # RST: never a reset in answer to a reset
    HOOK_VERDICT = "hook-verdict"  # DROP: a hook function stopped the packet (detail: its name)
    CONNTRACK = "conntrack"  # CONNTRACK: nf_conntrack_in (payload: ct)
    CONFIRM = "confirm"  # CONNTRACK: nf_conntrack_confirm (payload: confirm)
    EARLY_DROP = "early-drop"  # CONNTRACK: early_drop() evicted entries (detail: how many)
    TABLE_FULL = "table-full"  # CONNTRACK: nothing to evict, the packet is dropped
    QUEUED = "queued"  # CONNTRACK: held in a queue before confirmation (a race)
    REINJECTED = "reinjected"  # CONNTRACK: the held packet goes on to confirmation
    NAT_SKIP = "nat-skip"  # NAT: no conntrack entry
    NAT = "nat"  # NAT: translated, or not, by the binding (payload: nat when it binds)
    TABLE = "table"  # TABLE: an iptables table's verdict (detail: the NAT target's kind)
    LOG = "log"  # LOG (detail: the kernel log line)


class TraceVerdict(StrEnum):
    """What an event's step came to, as data. Each name is its own value, so the words
    printed are the names; the netfilter verdicts (``NfVerdict``) and the TCP tracker's
    actions (``TcpAction``) appear under their own names."""

    SEND = "SEND"  # SEND: a packet enters the world
    RST = "RST"  # RST: a reset was built in answer to this packet
    XMIT = "XMIT"  # XMIT
    RECV = "RECV"  # RECV
    OUT = "OUT"  # BRIDGE: out of a port
    UP = "UP"  # BRIDGE: up from a port to IP
    CAPTURED = "CAPTURED"  # DELIVER: a passive end host
    DELIVERED = "DELIVERED"  # DELIVER: to a socket
    LOCAL = "LOCAL"  # ROUTE
    FORWARD = "FORWARD"  # ROUTE
    SOCKET = "SOCKET"  # SOCKET: found
    NO_SOCKET = "NO_SOCKET"  # SOCKET: none
    NO_RST = "NO_RST"  # RST: never a reset for a reset
    LOG = "LOG"  # LOG
    TRANSLATED = "TRANSLATED"  # NAT: the packet was rewritten
    UNCHANGED = "UNCHANGED"  # NAT: the binding leaves it as it is
    SKIP = "SKIP"  # NAT: no conntrack entry
    ACCEPT = "ACCEPT"  # NF_ACCEPT / the tracker's NFCT_TCP_ACCEPT
    DROP = "DROP"  # NF_DROP, or the packet's life ends (Step.DROP)
    STOLEN = "STOLEN"  # NF_STOLEN
    QUEUE = "QUEUE"  # NF_QUEUE
    REPEAT = "REPEAT"  # NF_REPEAT
    IGNORE = "IGNORE"  # the tracker's NFCT_TCP_IGNORE
    INVALID = "INVALID"  # the tracker's NFCT_TCP_INVALID


# What a decision of the device layer or the IP stack (:class:`Why`) comes to, as step and
# verdict: one typed call per decision (``World.note``) records it.
STACK_EVENTS: dict[Why, tuple[Step, TraceVerdict]] = {
    Why.CRAFTED: (Step.SEND, TraceVerdict.SEND),
    Why.STACK_SENDS: (Step.SEND, TraceVerdict.SEND),
    Why.TCP_RESET: (Step.RST, TraceVerdict.RST),
    Why.REJECT_RESET: (Step.RST, TraceVerdict.RST),
    Why.XMIT: (Step.XMIT, TraceVerdict.XMIT),
    Why.RECV: (Step.RECV, TraceVerdict.RECV),
    Why.BRIDGE_OUT: (Step.BRIDGE, TraceVerdict.OUT),
    Why.BRIDGE_UP: (Step.BRIDGE, TraceVerdict.UP),
    Why.NEIGH_UNRESOLVED: (Step.DROP, TraceVerdict.DROP),
    Why.NO_LINK: (Step.DROP, TraceVerdict.DROP),
    Why.LOST: (Step.DROP, TraceVerdict.DROP),
    Why.CAPTURED: (Step.DELIVER, TraceVerdict.CAPTURED),
    Why.DELIVERED: (Step.DELIVER, TraceVerdict.DELIVERED),
    Why.ROUTE_LOCAL: (Step.ROUTE, TraceVerdict.LOCAL),
    Why.ROUTE_FORWARD: (Step.ROUTE, TraceVerdict.FORWARD),
    Why.NO_ROUTE: (Step.DROP, TraceVerdict.DROP),
    Why.NOT_FORWARDING: (Step.DROP, TraceVerdict.DROP),
    Why.NO_ROUTE_OUT: (Step.DROP, TraceVerdict.DROP),
    Why.TTL_EXCEEDED: (Step.DROP, TraceVerdict.DROP),
    Why.SOCKET_FOUND: (Step.SOCKET, TraceVerdict.SOCKET),
    Why.NO_SOCKET: (Step.SOCKET, TraceVerdict.NO_SOCKET),
    Why.NO_UDP_SOCKET: (Step.SOCKET, TraceVerdict.NO_SOCKET),
    Why.ICMP_RCV: (Step.SOCKET, TraceVerdict.SOCKET),
    Why.ICMP_SEND: (Step.RST, TraceVerdict.RST),  # the packet an ICMP message answers
    Why.FIREWALL: (Step.DROP, TraceVerdict.DROP),
    Why.BAD_CHECKSUM: (Step.DROP, TraceVerdict.DROP),
    Why.NO_RST_FOR_RST: (Step.RST, TraceVerdict.NO_RST),
    Why.LOG: (Step.LOG, TraceVerdict.LOG),
}


@dataclass(slots=True)
class Bound:
    """One of Guido van Rooij's bounds as evaluated for one packet."""

    name: str  # "I" .. "IV"
    rule: str  # in words, e.g. "seq <= sender.td_maxend"
    limit: int  # the bound's value
    value: int  # the packet's value
    passed: bool


@dataclass(slots=True)
class WindowCheck:
    """Why ``tcp_in_window`` decided what it did: the numbers, before and after."""

    seq: int
    end: int
    ack: int
    sack: int
    win: int
    sender_dir: int
    bounds: list[Bound] = field(default_factory=list)
    before: tuple[dict[str, int], dict[str, int]] = ({}, {})
    after: tuple[dict[str, int], dict[str, int]] = ({}, {})

    @property
    def failed(self) -> list[str]:
        return [b.name for b in self.bounds if not b.passed]


@dataclass(frozen=True, slots=True, kw_only=True)
class CtSysctls:
    """The ``net.netfilter.nf_conntrack_*`` values conntrack read for the packet."""

    tcp_be_liberal: int
    tcp_loose: int
    tcp_max_retrans: int
    tcp_ignore_invalid_rst: int
    log_invalid: int
    checksum: int


# The records made per packet while tracing (ConntrackInfo, TraceEvent) are not frozen: a
# frozen dataclass's __init__ sets each field through object.__setattr__, which made building
# an event about twice as slow. They are never changed once recorded.


@dataclass(slots=True, kw_only=True)
class ConntrackInfo:
    """What ``nf_conntrack_in`` decided about one packet."""

    ctstate: CtState  # the one state --ctstate matches right after conntrack (no SNAT/DNAT bits)
    window: TraceVerdict | None  # the TCP tracker's action: ACCEPT / IGNORE / INVALID
    reason: str | None  # the kernel's log text for it
    old_state: TcpState | None
    new_state: TcpState | None
    check: WindowCheck | None  # tcp_in_window's bounds and values
    ct_id: int | None  # the entry attached afterwards (None: INVALID or refused)
    created: bool  # a new, unconfirmed entry
    snat: bool  # the attached entry has a source NAT binding
    direction: CtDir | None
    entry: CtEntry | None  # the packet's connection afterwards
    sysctls: CtSysctls  # the values that decided
    log_prefix: str  # what the kernel puts before ``reason`` in its log line


class ConfirmOutcome(Enum):
    """What ``__nf_conntrack_confirm()`` did with an unconfirmed entry."""

    INSERTED = "inserted"  # hashed in both directions
    CLASH_DROP = "clash-drop"  # lost the race: the packet is dropped (insert_failed)
    CLASH_MERGED = "clash-merged"  # lost the race: the packet goes on with the winner's entry
    CLASH_REPLY_ONLY = "clash-reply-only"  # nf_ct_resolve_clash_harder(): reply direction only
    DYING = "dying"  # killed before confirmation: not inserted


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmInfo:
    """What ``__nf_conntrack_confirm()`` decided about one packet's entry."""

    outcome: ConfirmOutcome
    ct_id: int  # the packet's own (unconfirmed) entry
    winner: int | None  # the entry confirmed first, on a clash
    counters: tuple[str, ...]  # the conntrack -S counters this confirmation moved


@dataclass(frozen=True, slots=True, kw_only=True)
class NatBinding:
    """A NAT binding made on a connection's first packet."""

    kind: NatKind
    reply: tuple[str, int, str, int]  # the reply tuple: (src, sport, dst, dport)


@dataclass(slots=True, kw_only=True)
class TraceEvent:
    """One decision: where, what (``step``, ``verdict``), why (``why``, ``detail`` and the typed
    payloads ``ct``, ``nat`` and ``confirm``) and the packet before and after. What decided is
    recorded with it (``rule_text``, ``ct.sysctls``), so a reader explains the step from the
    event alone."""

    t: float
    pid: int
    step: Step
    why: Why
    ns: str
    dev: str | None = None
    hook: Hook | None = None
    priority: int | None = None
    table: TableName | None = None
    chain: str | None = None  # a built-in chain (the hook's) or a user chain: not a closed set
    rule: int | None = None
    rule_text: str | None = None  # TABLE / LOG: the deciding rule as ``iptables -S`` prints it
    verdict: TraceVerdict | None = None
    before: Packet | None = None
    after: Packet | None = None
    detail: str | None = None
    ct: ConntrackInfo | None = None
    nat: NatBinding | None = None
    confirm: ConfirmInfo | None = None
    cause: int | None = None


class Trace:
    """The events in order, indexed by packet id, so a packet's events and the packets it
    caused are found without scanning the trace.

    ``enabled`` off records nothing (benchmarks). ``keep`` off keeps no ordered list, only the
    per-packet index, from which a streaming reader removes each packet once it has read it
    (:meth:`forget`): memory then stays flat however long the run.
    """

    __slots__ = ("_by_pid", "_children", "enabled", "events", "keep")

    def __init__(self, enabled: bool = True, keep: bool = True) -> None:
        self.enabled = enabled
        self.keep = keep
        self.events: list[TraceEvent] = []
        self._by_pid: dict[int, list[TraceEvent]] = {}
        self._children: dict[int, list[int]] = {}

    def add(self, event: TraceEvent) -> None:
        if self.keep:
            self.events.append(event)
        mine = self._by_pid.get(event.pid)
        if mine is None:
            self._by_pid[event.pid] = [event]
        else:
            mine.append(event)
        if event.cause is not None and event.step is Step.SEND:
            self._children.setdefault(event.cause, []).append(event.pid)

    def for_packet(self, pid: int) -> list[TraceEvent]:
        """Packet ``pid``'s events, in the order they happened."""
        return self._by_pid.get(pid, [])

    def caused_by(self, pid: int) -> list[int]:
        """Ids of the packets the world sent because of packet ``pid``, in the order sent."""
        return self._children.get(pid, [])

    def forget(self, pid: int) -> None:
        """Drop packet ``pid`` and everything it caused from the index."""
        self._by_pid.pop(pid, None)
        for child in self._children.pop(pid, ()):
            self.forget(child)
