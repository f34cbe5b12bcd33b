"""Run a conversation through one namespace's connection tracker, segment by segment.

This is the driver user-written properties call: :func:`track_conversation` feeds every
segment of a :class:`~sim.testing.strategies.Conversation` to
:meth:`sim.netfilter.conntrack.ConntrackTable.nf_conntrack_in` (then confirms, as the packet
leaving the namespace would) and returns one :class:`SegmentResult` per segment: the
tracker's verdict, the kernel's log text, the TCP state afterwards and, when
``tcp_in_window()`` ran, Rooij's bounds with their numbers. :class:`Tracker` is the same
thing one segment at a time, for tests that inspect the entry in between.

Only conntrack runs here (no NAT, no routing, no host RST): the client is conntrack's
ORIGINAL direction, the server its REPLY. For the whole docker-bridge pipeline, turn the
conversation into a case with :func:`sim.testing.conversation_to_case` and replay it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from sim.include.nf_conntrack import Conn, CtInfo
from sim.include.nf_conntrack_tcp import STATE_NAMES
from sim.netfilter.conntrack import ConntrackResult, ConntrackTable
from sim.netfilter.profiles import DEFAULT_PROFILE, KernelProfile, resolve_kernel
from sim.netfilter.proto_tcp import TcpAction
from sim.packet import IPPROTO_TCP, Packet, TcpOptions, parse_flags
from sim.skb import Skb
from sim.testing.strategies import Conversation, Segment
from sim.trace import Bound, WindowCheck

CLIENT = ("192.0.2.2", 40000)  # ORIGINAL direction (documentation addresses, RFC 5737)
SERVER = ("203.0.113.9", 443)  # REPLY direction

# What ``--ctstate`` matches for each ctinfo (xt_conntrack's XT_CONNTRACK_STATE_BIT()).
_CTSTATE = {
    CtInfo.NEW: "NEW",
    CtInfo.ESTABLISHED: "ESTABLISHED",
    CtInfo.ESTABLISHED_REPLY: "ESTABLISHED",
    CtInfo.RELATED: "RELATED",
    CtInfo.RELATED_REPLY: "RELATED",
    CtInfo.UNTRACKED: "UNTRACKED",
}


class SegmentResult(NamedTuple):
    """What conntrack made of one segment (the fields of ``nflab replay --json`` that
    conntrack alone decides, plus the numbers behind them).

    * ``window``: the TCP tracker's verdict, ACCEPT / IGNORE / INVALID, or None when it did
      not run (table full);
    * ``reason``: the kernel's log text for IGNORE/INVALID (no ``nf_ct_proto_6:`` prefix);
    * ``tcp_state``: the connection's state after the segment, as ``conntrack -L`` names it,
      None when no entry holds the segment's tuple;
    * ``check``: ``tcp_in_window()``'s explanation (the four bounds, ``td_*`` before and
      after), None when the window was not checked;
    * ``ct``/``ctinfo``: the entry attached to the packet (None: INVALID, NAT skips it).

    A named tuple: immutable, and the cheapest record Python builds (one per segment).
    """

    segment: Segment
    window: TcpAction | None
    reason: str | None
    tcp_state: str | None
    check: WindowCheck | None
    ct: Conn | None
    ctinfo: CtInfo | None

    @property
    def ctstate(self) -> str:
        """What ``-m conntrack --ctstate`` matches right after conntrack."""
        return "INVALID" if self.ctinfo is None else _CTSTATE[self.ctinfo]

    @property
    def bounds(self) -> tuple[Bound, ...]:
        """Rooij's bounds as evaluated (name, rule, limit, the packet's value, passed)."""
        return () if self.check is None else tuple(self.check.bounds)

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the bounds that failed ("I" .. "IV")."""
        return tuple(b.name for b in self.bounds if not b.passed)


class Tracker:
    """One namespace's conntrack table with a client (ORIGINAL) and a server (REPLY).

    ``kernel`` is a profile name or a ``uname -r`` release (or a :class:`KernelProfile`); ``sysctl`` maps
    ``net.netfilter.nf_conntrack_*`` names, full or short (``tcp_be_liberal``), to integers.
    ValueError (one line) for an unknown profile or sysctl, or one the kernel does not have.
    Virtual time starts at 0 and moves by each call's ``dt`` seconds. ``explain=False`` skips
    building the window explanation (``check`` is then None): same verdicts, faster.
    """

    __slots__ = ("client", "explain", "now", "server", "table")

    def __init__(
        self,
        kernel: str | KernelProfile = DEFAULT_PROFILE,
        *,
        sysctl: Mapping[str, int] | None = None,
        client: tuple[str, int] = CLIENT,
        server: tuple[str, int] = SERVER,
        explain: bool = True,
    ) -> None:
        profile = resolve_kernel(kernel) if isinstance(kernel, str) else kernel
        self.table = ConntrackTable(profile)
        for name, value in (sysctl or {}).items():
            self.table.sysctl.set(name, value, profile)
        self.client, self.server = client, server
        self.explain = explain
        self.now = 0.0

    def feed(self, seg: Segment, *, dt: float = 0.0) -> SegmentResult:
        """``nf_conntrack_in`` + confirm for one segment, ``dt`` seconds after the last."""
        if seg.frm == "c":
            (src, sport), (dst, dport) = self.client, self.server
        elif seg.frm == "s":
            (src, sport), (dst, dport) = self.server, self.client
        else:
            raise ValueError(f"segment sender must be 'c' or 's', not {seg.frm!r}")
        self.now += dt
        now = self.now
        pkt = Packet(src, dst, sport, dport, seg.seq, seg.ack, seg.flags, seg.win, seg.length, seg.options)
        skb = Skb(pkt)
        table = self.table
        res: ConntrackResult = table.nf_conntrack_in(skb, now, explain=self.explain)
        table.nf_conntrack_confirm(skb, now)
        ct = res.ct
        if ct is None or ct.dying:  # not attached (INVALID) or killed: whatever holds the tuple
            hit = table.find((src, sport, dst, dport, IPPROTO_TCP), now)
            ct = None if hit is None else hit[0]
        tcp = res.tcp
        return SegmentResult(
            seg,
            res.window,
            res.reason,
            None if ct is None else STATE_NAMES[ct.tcp.state],
            None if tcp is None else tcp.window,
            res.ct,
            res.ctinfo,
        )

    def send(
        self,
        frm: str,
        flags: str | int,
        seq: int,
        ack: int = 0,
        win: int = 65535,
        length: int = 0,
        options: TcpOptions | None = None,
        *,
        dt: float = 0.0,
    ) -> SegmentResult:
        """:meth:`feed` spelled out: ``flags`` as letters (``"SA"``, as in case files) or bits."""
        bits = parse_flags(flags) if isinstance(flags, str) else flags
        return self.feed(Segment(frm, bits, seq, ack, win, length, options or TcpOptions()), dt=dt)

    @property
    def ct(self) -> Conn:
        """The one live connection entry (AssertionError when there is none or several)."""
        entries = self.table.entries(self.now)
        assert len(entries) == 1, f"expected one conntrack entry, found {len(entries)}"
        return entries[0]


def track_conversation(
    conversation: Conversation | Iterable[Segment],
    *,
    kernel: str | KernelProfile = DEFAULT_PROFILE,
    sysctl: Mapping[str, int] | None = None,
    dt: float = 0.0,
    explain: bool = True,
) -> list[SegmentResult]:
    """Every segment of ``conversation`` through a fresh :class:`Tracker` of ``kernel`` with
    ``sysctl``; one result per segment, in order. ``dt`` seconds pass before each segment
    (0: all at once, so no entry expires); ``explain=False`` leaves out the bounds (faster)::

        results = track_conversation(conv, kernel="3.10", sysctl={"tcp_be_liberal": 1})
        assert all(r.window is TcpAction.ACCEPT for r in results)
    """
    tracker = Tracker(kernel, sysctl=sysctl, explain=explain)
    segments: Sequence[Segment] | Iterable[Segment] = (
        conversation.segments if isinstance(conversation, Conversation) else conversation
    )
    return [tracker.feed(seg, dt=dt) for seg in segments]
