"""A capture through conntrack: which packets the kernel would mark INVALID or IGNORE, and why.

Every IPv4 TCP packet of a capture goes, in capture order and at its capture time, through a
:class:`sim.netfilter.conntrack.ConntrackTable` per kernel profile asked for -- the same
``nf_conntrack_in`` / ``nf_conntrack_tcp_packet`` / ``tcp_in_window`` the model runs. The
table groups packets into connections by their tuple as the kernel does, and picks up a
connection whose handshake is not in the capture as the kernel does with
``nf_conntrack_tcp_loose`` (the first packet seen is the ORIGINAL direction).

Some packets of a host's capture are not what they look like, and are handled as the host's
conntrack saw them:

- a RST the host's own stack sent (``tcp_v4_send_reset``) answering an INVALID packet: the
  RST carries ``seq`` = that packet's ack (or, answering a segment without ACK, seq 0 and
  ``ack`` = its end). It left from the local stack with a tuple of its own, not through the
  connection's entry, so it is reported and not tracked;
- a packet of the connection's originator that left untranslated (its source is not the
  address the connection was NATed to, same ports and peer): conntrack saw it before NAT,
  in the ORIGINAL direction of the entry, so it is tracked as part of that connection;
- ``tcpdump -i any`` shows a forwarded packet once per interface it crosses, before and
  after NAT: conntrack saw it once, so later copies on other interfaces are skipped, and a
  reply to the NATed address (and port, where MASQUERADE changed it) joins the connection
  seen before NAT, in the REPLY direction. A copy of the originator's packet that leaves by
  the interface where the connection's packets leave translated, but with the source it
  arrived with, left untranslated (pod-ip-leak).

Memory is bounded by the number of connections: packets are not kept, only the flagged ones
are handed to the caller as they are found, plus a few recent INVALID/IGNORE packets per
connection to match the host's RSTs against and the last few thousand packets' keys to
recognise copies.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from sim.include.netfilter import CtState
from sim.include.nf_conntrack import ORIGINAL, CtInfo, nf_ct_get_tuple
from sim.netfilter.conntrack import ConntrackResult, ConntrackTable
from sim.netfilter.profiles import KernelProfile
from sim.netfilter.proto_tcp import NFCT_TCP_ACCEPT, TcpAction, tcp_in_window
from sim.netfilter.sysctl import ConntrackSysctls
from sim.netfilter.tcp_states import get_conntrack_index
from sim.packet import IPPROTO_TCP, SEQ_MASK, TCPHDR_ACK, TCPHDR_FIN, TCPHDR_RST, Packet
from sim.pcap.datagram import datagram_of
from sim.pcap.link import Segment
from sim.pcap.reader import Frame
from sim.skb import Skb
from sim.trace import Bound

CtTuple = tuple[str, int, str, int]  # a TCP connection: (src, sport, dst, dport)
K = TypeVar("K")
V = TypeVar("V")

COPIES_KEPT: Final = 4096  # packets remembered to recognise their copies on other interfaces
# A copy on another interface is seen within 200 ms: forwarding takes microseconds, but an
# NFQUEUE verdict or an egress qdisc holds a packet between its copies (dg-any.pcap: 52 ms).
COPY_WINDOW_NS: Final = 200_000_000
COPY: Final = "copies of a packet on another interface"
RECENT_FLAGGED: Final = 64  # INVALID/IGNORE packets per connection a later host RST is matched against
DIRECTIONS = ("ORIGINAL", "REPLY")


@dataclass(slots=True)
class Verdict:
    """What one kernel's conntrack did with one packet.

    ``ctstate`` is what ``-m conntrack --ctstate`` matches right after conntrack (NEW,
    ESTABLISHED, INVALID); ``window`` the tracker's ACCEPT / IGNORE / INVALID (None when the
    packet never reached it: table full); ``reason`` the kernel's log text; ``state`` the
    TCP conntrack state after the packet; ``bound`` the window bound that failed, with its
    limit and the packet's value, when ``tcp_in_window`` decided.
    """

    kernel: str
    ctstate: CtState
    window: TcpAction | None
    reason: str | None
    state: str
    bound: Bound | None = None

    @property
    def plain_accept(self) -> bool:
        return self.window is TcpAction.ACCEPT and self.ctstate is not CtState.INVALID


@dataclass(slots=True)
class Flagged:
    """A packet that is not plain ACCEPT on some kernel, or a host RST, or left untranslated."""

    frame: int
    ts_ns: int
    conn: int
    direction: str  # ORIGINAL / REPLY as conntrack sees it; "HOST" for the host's own RST
    pkt: Packet
    verdicts: list[Verdict]
    host_rst_for: int | None = None  # the INVALID frame this RST of the host's answers
    untranslated: bool = False
    copy_of: int | None = None  # the frame conntrack saw, of which this one is a later copy


@dataclass(slots=True)
class Connection:
    """One connection as conntrack tracked it, summed up."""

    id: int
    orig: CtTuple  # ORIGINAL: (src, sport, dst, dport) of the first packet seen
    first_frame: int
    first_ts_ns: int
    picked_up: bool  # the first packet was not a SYN: nf_conntrack_tcp_loose pickup
    last_frame: int = 0
    last_ts_ns: int = 0
    packets: list[int] = field(default_factory=lambda: [0, 0])
    payload: list[int] = field(default_factory=lambda: [0, 0])
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # kernel -> {INVALID: n, IGNORE: n}
    states: dict[str, str] = field(default_factory=dict)  # kernel -> TCP state at the end
    host_rsts: list[int] = field(default_factory=list)
    untranslated: list[int] = field(default_factory=list)
    nat_iface: int | None = None  # where its packets leave SNATed (a -i any capture's copies) ...
    nat_src: str = ""  # ... and as which address
    orig_ttl: int = -1  # TTL of the originator's latest packet (forwarded: one less than it sent)
    recent_flagged: deque[tuple[int, Packet, bool]] = field(
        default_factory=lambda: deque(maxlen=RECENT_FLAGGED)
    )  # (frame, packet, INVALID on the first kernel)


@dataclass(slots=True)
class _Seen:
    """The first copy of a packet: where and when, its tuple as captured, and once tracked its
    connection, the verdicts and whether it was its originator's, as captured (not joined
    through NAT)."""

    iface: int
    ts_ns: int
    tup: CtTuple
    frame: int
    conn: Connection | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    original: bool = False


@dataclass(slots=True)
class Stats:
    frames: int = 0
    tcp: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    first_ts_ns: int | None = None
    last_ts_ns: int = 0


def is_later_copy(first_iface: int, first_ts_ns: int, frame: Frame) -> bool:
    """Whether ``frame`` holds a later copy of a packet first seen on ``first_iface`` at
    ``first_ts_ns`` (the caller matched their headers).

    ``tcpdump -i any`` on a host sees a forwarded packet on every interface it crosses (the
    bridge port, the bridge, the uplink). Conntrack saw it once, at the first (PREROUTING), so
    only the first copy counts. Copies on the same interface (a duplicate on the wire) are
    packets of their own -- except in a Linux cooked v1 capture, whose frames tell interfaces
    apart only by their header (negative ``iface``), which a bridge and its port share: there a
    duplicate within the window counts as a copy."""
    iface = frame.iface
    return (first_iface != iface or iface < 0) and frame.ts_ns - first_ts_ns <= COPY_WINDOW_NS


def remember(recent: OrderedDict[K, V], key: K, first: V) -> V:
    """``first`` recorded under ``key`` among the last :data:`COPIES_KEPT` packets."""
    recent[key] = first
    if len(recent) > COPIES_KEPT:
        recent.popitem(last=False)
    return first


def _ctstate(ctinfo: CtInfo | None) -> CtState:
    """What ``--ctstate`` matches for the packet's ctinfo (``conntrack_mt()``: no entry attached
    is INVALID; ``XT_CONNTRACK_STATE_BIT(ctinfo)`` folds the REPLY variants)."""
    if ctinfo is None:
        return CtState.INVALID
    if ctinfo == CtInfo.NEW:
        return CtState.NEW
    if ctinfo in (CtInfo.RELATED, CtInfo.RELATED_REPLY):
        return CtState.RELATED
    return CtState.ESTABLISHED


class Tracker:
    """One kernel profile's conntrack table, fed packet by packet."""

    __slots__ = ("be_liberal", "name", "profile", "table")

    def __init__(self, profile: KernelProfile, sysctls: dict[str, int] | None = None, name: str = "") -> None:
        self.profile = profile
        self.name = name or profile.name
        sysctls = sysctls or {}
        sysctl = ConntrackSysctls()
        sysctl.max = 0  # a capture's connections are all tracked: no early drop
        for key, value in sysctls.items():
            sysctl.set(key, value, profile)
        self.table = ConntrackTable(profile, sysctl)
        self.be_liberal = bool(sysctl.tcp_be_liberal)

    def track(self, pkt: Packet, now: float) -> Verdict | None:
        """Run ``pkt`` through conntrack; None for plain ACCEPT, else the verdict."""
        table = self.table
        skb = Skb(pkt)
        res = table.nf_conntrack_in(skb, now)
        table.nf_conntrack_confirm(skb, now)
        tcp = res.tcp
        if tcp is not None and tcp.action is TcpAction.ACCEPT and res.ct is not None:
            return None
        return self._verdict(pkt, now, res)

    def _verdict(self, pkt: Packet, now: float, res: ConntrackResult) -> Verdict:
        """The verdict of a packet conntrack did not plainly accept."""
        tcp = res.tcp
        window = None if tcp is None else (TcpAction.INVALID if tcp.action is None else tcp.action)
        ct = res.ct
        hit = self.table.find(nf_ct_get_tuple(pkt), now) if ct is None else None
        entry = ct if ct is not None else (hit[0] if hit else None)
        state = entry.state_name() if entry is not None else "NONE"
        bound = self._failed_bound(pkt, now, res.reason, tcp.action if tcp else None)
        return Verdict(self.name, _ctstate(res.ctinfo), window, res.reason, state, bound)

    def track_segment(self, frame: Frame, seg: Segment, now: float) -> Verdict | None:
        """:meth:`track` for a segment as the capture has it (its tuple not rewritten): the
        common one (an ACK in ESTABLISHED) goes through
        :meth:`~sim.netfilter.conntrack.ConntrackTable.nf_conntrack_in_established` on its
        header fields, every other through :meth:`track` with the frame's packet."""
        src, dst, sport, dport, seq, ack, flags, win, payload, opts, _ttl, _id, _ts = seg
        end = (seq + payload + (flags >> 1 & 1) + (flags & TCPHDR_FIN)) & SEQ_MASK  # segment_seq_plus_len()
        res = self.table.nf_conntrack_in_established(
            (src, sport, dst, dport, IPPROTO_TCP), flags, seq, ack, win, end, opts, now
        )
        if res is None:
            return self.track(_packet(frame), now)
        if res.ct is not None and res.tcp is not None and res.tcp.action is NFCT_TCP_ACCEPT:
            return None
        return self._verdict(_packet(frame), now, res)

    def _failed_bound(
        self, pkt: Packet, now: float, reason: str | None, action: TcpAction | None
    ) -> Bound | None:
        """The first failed bound, if ``tcp_in_window`` made the decision.

        A window IGNORE or INVALID leaves the window state as the check found it (only an
        ACCEPT updates it), so ``tcp_in_window`` run again with ``explain`` on a copy of the
        entry's TCP state reproduces the decision and its numbers; when it does not (the
        state table or the RST checks decided) there is no bound to name.
        """
        if action not in (TcpAction.IGNORE, TcpAction.INVALID):
            return None
        hit = self.table.find(nf_ct_get_tuple(pkt), now)
        if hit is None:
            return None
        ct, direction = hit
        tcp = ct.tcp.clone()
        index = get_conntrack_index(pkt.flags)
        again, why, check = tcp_in_window(tcp, direction, index, pkt, self.profile, self.be_liberal, True)
        if again is not action or why != reason or check is None:
            return None
        return next((b for b in check.bounds if not b.passed), None)


def verdict_word(v: Verdict) -> str:
    """The verdict in one word: INVALID (no entry attached), else the tracker's IGNORE/ACCEPT,
    or DROP when the tracker never ran (table full)."""
    if v.ctstate is CtState.INVALID:
        return "INVALID"
    return v.window.name if v.window is not None else "DROP"


def _packet(frame: Frame) -> Packet:
    """The packet of a frame that holds a segment."""
    pkt = frame.pkt
    assert pkt is not None
    return pkt


def _rst_answers(rst: Packet, bad: Packet) -> bool:
    """Is ``rst`` what ``tcp_v4_send_reset()`` sends in answer to ``bad``?

    "If the offending segment had ACK set, the RST carries seq = that ack and no ACK flag;
    otherwise seq = 0, ACK set, ack = seq + SYN + FIN + payload length" (RFC 793, p. 36).
    """
    if (rst.src, rst.sport, rst.dst, rst.dport) != (bad.dst, bad.dport, bad.src, bad.sport):
        return False
    if bad.flags & TCPHDR_RST:
        return False  # "never send a reset in response to a reset"
    if bad.flags & TCPHDR_ACK:
        return rst.seq == bad.ack and not rst.flags & TCPHDR_ACK
    return rst.seq == 0 and bool(rst.flags & TCPHDR_ACK) and rst.ack == bad.end_seq


def _private(addr: str) -> bool:
    """RFC 1918 (what Docker's bridge networks use)."""
    ip = ipaddress.IPv4Address(addr)
    return any(ip in net for net in _RFC1918)


_RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class Analysis:
    """The capture through one tracker per kernel; flagged packets go to ``on_flagged``.

    ``inner_addrs``: addresses known to be the container's (from its own capture), so a
    packet leaving from one of them on the uplink is recognised as untranslated.
    """

    def __init__(
        self,
        trackers: list[Tracker],
        on_flagged: Callable[[Flagged], None] | None = None,
        inner_addrs: Iterable[str] = (),
        skip_frames: Iterable[int] = (),
        on_packet: Callable[[Frame, Connection, int, Packet], None] | None = None,
        only: set[CtTuple] | None = None,
        on_datagram: Callable[[Frame, Packet], None] | None = None,
    ) -> None:
        self.trackers = trackers
        self.kernels = [t.name for t in trackers]
        self.on_flagged = on_flagged or (lambda f: None)
        self.inner_addrs = set(inner_addrs)
        self.skip_frames = set(skip_frames)
        self.on_packet = on_packet  # every tracked packet: frame, connection, direction, packet
        self.only = only  # track only the connections with these ORIGINAL tuples (all are grouped)
        self.on_datagram = on_datagram  # UDP and ICMP (sim.pcap.flows); without it they are skipped
        self.stats = Stats()
        self.connections: dict[CtTuple, Connection] = {}  # both directions' tuples
        self.by_ports: dict[tuple[int, str, int], Connection] = {}  # (sport, peer, dport) of ORIGINAL
        self.nat_replies: dict[CtTuple, Connection] = {}  # a SNATed copy's reply tuple -> its connection
        self._seen: OrderedDict[tuple[int, ...], _Seen] = OrderedDict()
        self._ids = 0

    # ------------------------------------------------------------ per frame
    def feed(self, frame: Frame) -> None:
        st = self.stats
        st.frames += 1
        ts_ns = frame.ts_ns
        if st.first_ts_ns is None:
            st.first_ts_ns = ts_ns
        st.last_ts_ns = ts_ns
        seg = frame.seg
        if seg is None:
            datagram = datagram_of(frame.skipped) if self.on_datagram is not None else None
            if datagram is not None and self.on_datagram is not None:
                self.on_datagram(frame, datagram)  # UDP and ICMP: sim.pcap.flows
                return
            st.skipped[frame.skipped] = st.skipped.get(frame.skipped, 0) + 1
            return
        first = self._copy(frame, seg)
        if first.frame != frame.number:
            st.skipped[COPY] = st.skipped.get(COPY, 0) + 1
            self._copied(frame, seg, first)
            return
        st.tcp += 1
        if frame.number in self.skip_frames:
            return
        src, dst, sport, dport, _seq, _ack, flags, _win, payload, _opts, ttl, _id, _ts = seg
        conn = self.connections.get((src, sport, dst, dport))
        # the packet as conntrack saw it when that is not the capture's (NAT joined it), else None
        seen: Packet | None = None
        untranslated = False
        if conn is None:
            pkt = _packet(frame)
            twin = self.by_ports.get((sport, dst, dport))
            reply_to = self.nat_replies.get((src, sport, dst, dport))
            reply_to = reply_to or self.by_ports.get((dport, src, sport))
            if self._host_rst(frame, pkt):
                return
            if twin is not None and twin.orig[0] != src and self._looks_inner(pkt):
                # conntrack saw it before NAT, in the entry's ORIGINAL direction
                conn, untranslated = twin, True
                src, sport, dst, dport = twin.orig
                seen = pkt.rewritten(src, sport, dst, dport, ttl)
            elif reply_to is not None and reply_to.orig[0] != dst:
                # a reply to the NATed address of a connection captured before NAT (tcpdump -i any)
                conn = reply_to
                seen = pkt.rewritten(src, sport, conn.orig[0], conn.orig[1], ttl)
            else:
                conn = self._new_connection(frame, pkt)
        elif flags & TCPHDR_RST and conn.recent_flagged and self._host_rst(frame, _packet(frame)):
            return
        orig = conn.orig
        if self.only is not None and orig not in self.only:
            return
        direction = ORIGINAL if orig[0] == src and orig[1] == sport else 1 - ORIGINAL
        if direction == ORIGINAL:
            conn.orig_ttl = ttl
        conn.packets[direction] += 1
        conn.payload[direction] += payload
        conn.last_frame = frame.number
        conn.last_ts_ns = ts_ns
        if self.on_packet is not None:
            self.on_packet(frame, conn, direction, seen or _packet(frame))
        now = ts_ns / 1e9
        verdicts: list[Verdict] = []
        flagged = False
        for tracker in self.trackers:
            v = tracker.track(seen, now) if seen is not None else tracker.track_segment(frame, seg, now)
            if v is None:
                verdicts.append(_ACCEPTED)
                continue
            flagged = True
            verdicts.append(v)
            counts = conn.counts.setdefault(tracker.name, {})
            label = verdict_word(v)
            counts[label] = counts.get(label, 0) + 1
            invalid = v.ctstate is CtState.INVALID
            if tracker is self.trackers[0] and (invalid or v.window is TcpAction.IGNORE):
                conn.recent_flagged.append((frame.number, _packet(frame), invalid))
        first.conn, first.verdicts, first.original = conn, verdicts, direction == ORIGINAL and seen is None
        if untranslated:
            conn.untranslated.append(frame.number)
        if flagged or untranslated:
            pkt = seen or _packet(frame)
            self.on_flagged(
                Flagged(
                    frame.number,
                    ts_ns,
                    conn.id,
                    DIRECTIONS[direction],
                    _packet(frame),
                    [
                        self._filled(v, t, pkt, direction)
                        for v, t in zip(verdicts, self.trackers, strict=True)
                    ],
                    untranslated=untranslated,
                )
            )

    @staticmethod
    def _filled(v: Verdict, tracker: Tracker, pkt: Packet, direction: int) -> Verdict:
        """The verdict of a kernel that accepted a packet another kernel flagged."""
        if v is not _ACCEPTED:
            return v
        hit = tracker.table.find(nf_ct_get_tuple(pkt), float("-inf"))
        if hit is None:
            return Verdict(tracker.name, CtState.NEW, TcpAction.ACCEPT, None, "NONE")
        ct = hit[0]
        ctstate = CtState.NEW if direction == ORIGINAL and not ct.seen_reply else CtState.ESTABLISHED
        return Verdict(tracker.name, ctstate, TcpAction.ACCEPT, None, ct.state_name())

    def _looks_inner(self, pkt: Packet) -> bool:
        """Is ``pkt`` from the container behind a NATed connection with the same ports and peer?
        Its address is in the container's capture, or it is private (RFC 1918, as Docker's
        bridge networks are) and the packet does not open a connection of its own (no SYN)."""
        return pkt.src in self.inner_addrs or (_private(pkt.src) and not pkt.syn)

    def _copy(self, frame: Frame, seg: Segment) -> _Seen:
        """The first copy of the segment's packet, if it is a later copy of a packet seen just
        before (:func:`is_later_copy`), else the new record of this one. NAT may have rewritten
        the addresses, and the source port: the key leaves the ports out."""
        src, dst, sport, dport, seq, ack, flags, win, payload, _opts, _ttl, ip_id, _ts = seg
        key = (ip_id, seq, ack, flags, payload, win)
        seen = self._seen.get(key)
        if seen is not None and is_later_copy(seen.iface, seen.ts_ns, frame):
            return seen
        return remember(
            self._seen, key, _Seen(frame.iface, frame.ts_ns, (src, sport, dst, dport), frame.number)
        )

    def _copied(self, frame: Frame, seg: Segment, first: _Seen) -> None:
        """A later copy of the originator's packet ``first``: where SNAT rewrote its source,
        the interface the connection's packets leave by translated, and the reply tuple that
        joins the connection; where it leaves by that interface with the source it arrived
        with, NAT skipped it (an INVALID packet: pod-ip-leak), reported as untranslated with
        the verdicts conntrack gave ``first``."""
        conn = first.conn
        if conn is None or not first.original:
            return
        src, dst, sport, dport = seg[0], seg[1], seg[2], seg[3]
        if (src, sport) != first.tup[:2]:
            conn.nat_iface, conn.nat_src = frame.iface, src
            self.nat_replies[(dst, dport, src, sport)] = conn
        elif frame.iface == conn.nat_iface and (dst, dport) == first.tup[2:]:
            conn.untranslated.append(frame.number)
            pkt = _packet(frame)
            verdicts = [
                self._filled(v, t, pkt, ORIGINAL) for v, t in zip(first.verdicts, self.trackers, strict=True)
            ]
            self.on_flagged(
                Flagged(
                    frame.number,
                    frame.ts_ns,
                    conn.id,
                    DIRECTIONS[ORIGINAL],
                    pkt,
                    verdicts,
                    untranslated=True,
                    copy_of=first.frame,
                )
            )

    def _host_rst(self, frame: Frame, pkt: Packet) -> bool:
        """Report ``pkt`` as the host's own RST if it answers a recent INVALID (or IGNOREd) packet.

        A RST with the TTL of the originator's own (forwarded) packets from the same address
        came from the same stack as they did, not from the host's: the host's RST starts with
        its own TTL. From another address (the NATed one, in a capture that shows the
        connection before NAT) it is the host's.
        """
        if not pkt.flags & TCPHDR_RST:
            return False
        conn = self.connections.get((pkt.dst, pkt.dport, pkt.src, pkt.sport)) or self.by_ports.get(
            (pkt.sport, pkt.dst, pkt.dport)
        )
        if conn is None or (pkt.src == conn.orig[0] and pkt.ttl == conn.orig_ttl):
            return False
        for number, bad, invalid in reversed(conn.recent_flagged):
            # answering a packet this kernel only IGNOREs: only with the TTL or address as evidence
            if _rst_answers(pkt, bad) and (invalid or conn.orig_ttl >= 0 or pkt.src != conn.orig[0]):
                conn.host_rsts.append(frame.number)
                self.on_flagged(
                    Flagged(frame.number, frame.ts_ns, conn.id, "HOST", pkt, [], host_rst_for=number)
                )
                return True
        return False

    def _new_connection(self, frame: Frame, pkt: Packet) -> Connection:
        self._ids += 1
        tup = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        conn = Connection(self._ids, tup, frame.number, frame.ts_ns, picked_up=not pkt.syn)
        self.connections[tup] = conn
        self.connections[(pkt.dst, pkt.dport, pkt.src, pkt.sport)] = conn
        self.by_ports[(pkt.sport, pkt.dst, pkt.dport)] = conn
        return conn

    # ------------------------------------------------------------ the end
    def finish(self) -> list[Connection]:
        """The connections in order of appearance, with each kernel's final state."""
        conns = sorted({c.id: c for c in self.connections.values()}.values(), key=lambda c: c.id)
        for conn in conns:
            for tracker in self.trackers:
                hit = tracker.table.find((*conn.orig, IPPROTO_TCP), float("-inf"))
                conn.states[tracker.name] = hit[0].state_name() if hit else "gone"
        return conns


_ACCEPTED: Final = Verdict("", CtState.ESTABLISHED, TcpAction.ACCEPT, None, "")


def analyse(
    frames: Iterable[Frame],
    trackers: list[Tracker],
    inner_addrs: Iterable[str] = (),
    skip_frames: Iterable[int] = (),
) -> tuple[Analysis, list[Flagged]]:
    """Run ``frames`` through :class:`Analysis`, collecting the flagged packets."""
    out: list[Flagged] = []
    a = Analysis(trackers, out.append, inner_addrs, skip_frames)
    for frame in frames:
        a.feed(frame)
    return a, out
