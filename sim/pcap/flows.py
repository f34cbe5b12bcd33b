"""UDP flows and ICMP conversations of a capture through conntrack (nf_conntrack_core.c's
``nf_conntrack_in`` and ``__nf_conntrack_confirm``, nf_conntrack_proto_udp.c,
nf_conntrack_proto_icmp.c).

Each datagram :mod:`sim.pcap.datagram` decoded goes, in capture order and at its capture time,
through the same per-kernel :class:`sim.netfilter.conntrack.ConntrackTable` as the capture's
TCP segments (:class:`sim.pcap.analyse.Tracker`), so an ICMP error finds the TCP or UDP entry
it is about: ``udp_error`` / ``nf_conntrack_udp_packet``, ``icmp_error`` /
``nf_conntrack_inet_error`` / ``nf_conntrack_icmp_packet`` and the confirmation decide NEW,
ESTABLISHED, RELATED or INVALID on each kernel profile.

The flows are joined across NAT as the TCP path joins connections:

- a copy of a datagram on another interface (``tcpdump -i any``: before and after NAT) is
  skipped -- conntrack saw it once -- and, when NAT rewrote it, teaches the translation, so
  a reply to the translated tuple (and an ICMP error quoting it) joins the flow seen before
  NAT, in the REPLY direction; a copy of the originator's datagram that leaves by the
  interface where the flow's datagrams leave SNATed, with the source it arrived with, left
  untranslated;
- a UDP reply to the NATed address of a flow seen before NAT (same ports and peer) joins it;
- a datagram from the container's own address (known from its capture, or RFC 1918) on a
  flow that otherwise left translated is untranslated: conntrack saw it in the ORIGINAL
  direction of the entry, and NAT did not rewrite it.

Memory is bounded by the number of flows (and the last few thousand datagrams' keys).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sim.include.netfilter import CtState
from sim.include.nf_conntrack import ORIGINAL, CtInfo, invert_tuple, nf_ct_get_tuple
from sim.netfilter.hooks import NfVerdict
from sim.netfilter.proto_tcp import TcpAction
from sim.netfilter.proto_udp import udp_error
from sim.packet import ICMP_ERROR_TYPES, IcmpType, IpProto, Packet
from sim.pcap.analyse import Tracker, Verdict, _ctstate, _private, is_later_copy, remember
from sim.pcap.datagram import Datagram
from sim.pcap.reader import Frame
from sim.skb import Skb

DIRECTIONS = ("ORIGINAL", "REPLY")
Key = tuple[str, int, str, int, int]  # nf_conntrack_tuple: src, sport/id, dst, dport/type, proto


def _entry_state(tracker: Tracker, tup: Key, now: float, none: str = "NONE") -> str:
    """The flags of the entry ``tup`` belongs to as ``conntrack -L`` shows them (UNREPLIED,
    ASSURED, or neither: REPLIED); ``none`` without an entry."""
    hit = tracker.table.find(tup, now)
    if hit is None:
        return none
    ct = hit[0]
    return "ASSURED" if ct.assured else "REPLIED" if ct.seen_reply else "UNREPLIED"


def track_datagram(tracker: Tracker, pkt: Packet, now: float) -> Verdict:
    """``nf_conntrack_in()`` + ``__nf_conntrack_confirm()`` on one kernel for one datagram:
    the ctstate ``-m conntrack`` would match and the kernel's log text, if any."""
    check = pkt.udp_check if isinstance(pkt, Datagram) else None
    if check is not None:  # udp_error(): INVALID on every kernel, no entry touched
        reason = udp_error(check, True, tracker.table.sysctl.checksum, tracker.profile)
        return Verdict(
            tracker.name, CtState.INVALID, None, reason, _entry_state(tracker, nf_ct_get_tuple(pkt), now)
        )
    skb = Skb(pkt)
    res = tracker.table.nf_conntrack_in(skb, now)
    confirm = tracker.table.nf_conntrack_confirm(skb, now)
    ctstate = _ctstate(res.ctinfo)
    window = TcpAction.ACCEPT if res.ct is not None else None
    reason = res.reason
    if confirm.verdict is NfVerdict.DROP and confirm.outcome is not None:  # window None: DROP
        window, reason = None, f"{confirm.outcome.name.lower()} at __nf_conntrack_confirm"
    tup = nf_ct_get_tuple(pkt) if res.ct is None or res.ctinfo not in _RELATED else res.ct.orig
    return Verdict(tracker.name, ctstate, window, reason, _entry_state(tracker, tup, now))


_RELATED = (CtInfo.RELATED, CtInfo.RELATED_REPLY)
_PLAIN = (CtState.NEW, CtState.ESTABLISHED)


def datagram_word(v: Verdict) -> str:
    """NEW, ESTABLISHED, RELATED, INVALID, or DROP (refused at confirmation)."""
    if v.window is None and v.ctstate is not CtState.INVALID:
        return "DROP"
    return v.ctstate.name or "?"


@dataclass(slots=True)
class Flow:
    """One UDP flow or ICMP query conversation as conntrack tracked it, summed up."""

    id: int
    proto: IpProto
    orig: Key  # the tuple of the first datagram seen (ORIGINAL)
    first_frame: int
    first_ts_ns: int
    last_frame: int = 0
    last_ts_ns: int = 0
    packets: list[int] = field(default_factory=lambda: [0, 0])
    payload: list[int] = field(default_factory=lambda: [0, 0])
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # kernel -> {ctstate: n}
    states: dict[str, str] = field(default_factory=dict)  # kernel -> entry flags at the end
    untranslated: list[int] = field(default_factory=list)
    nat_iface: int | None = None  # where its datagrams leave SNATed (a -i any capture's copies)

    @property
    def label(self) -> str:
        return f"{'u' if self.proto is IpProto.UDP else 'i'}{self.id}"


@dataclass(slots=True)
class DatagramFlagged:
    """A datagram that is not plain NEW/ESTABLISHED on some kernel (INVALID, RELATED,
    dropped at confirmation), or that left untranslated."""

    frame: int
    ts_ns: int
    flow: str  # the flow's label (u3, i1); for an ICMP error, the flow or #N it is about
    direction: str
    pkt: Packet
    verdicts: list[Verdict]
    untranslated: bool = False
    copy_of: int | None = None  # the frame conntrack saw, of which this one is a later copy


@dataclass(slots=True)
class _Seen:
    """The first copy of a datagram: where and when, its tuple as captured, and once tracked
    its flow, the verdicts and whether it was its originator's, as captured."""

    iface: int
    ts_ns: int
    tup: Key
    frame: int
    flow: Flow | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    original: bool = False


@dataclass(slots=True)
class DatagramStats:
    udp: int = 0
    icmp: int = 0


OnDatagram = Callable[[Frame, Flow, int, Packet, list[Verdict]], None]  # after tracking


class DatagramAnalysis:
    """The capture's UDP and ICMP through the same trackers as its TCP (the tables are
    shared: an ICMP error finds the TCP entry it quotes). ``tcp_label`` names the TCP
    connection a tuple belongs to (``#N``), for the errors about one."""

    def __init__(
        self,
        trackers: list[Tracker],
        on_flagged: Callable[[DatagramFlagged], None],
        inner_addrs: Iterable[str] = (),
        on_datagram: OnDatagram | None = None,
        tcp_label: Callable[[tuple[str, int, str, int]], str | None] = lambda _t: None,
    ) -> None:
        self.trackers = trackers
        self.on_flagged = on_flagged
        self.inner_addrs = set(inner_addrs)
        self.on_datagram = on_datagram
        self.tcp_label = tcp_label
        self.stats = DatagramStats()
        self.flows: dict[Key, Flow] = {}  # both directions' tuples
        self.by_ports: dict[tuple[int, int, str, int], Flow] = {}  # (proto, sport, peer, dport)
        self.nat: dict[Key, tuple[Flow, Key]] = {}  # a translated reply tuple -> (flow, as seen)
        self._seen: OrderedDict[tuple[int, ...], _Seen] = OrderedDict()
        self._ids = {IpProto.UDP: 0, IpProto.ICMP: 0}

    def feed(self, frame: Frame, pkt: Packet) -> None:
        """One datagram (``pkt``: as captured, :func:`sim.pcap.datagram.datagram_of`)."""
        captured = pkt
        if pkt.proto is IpProto.UDP:
            self.stats.udp += 1
        else:
            self.stats.icmp += 1
        first = self._copy(frame, pkt)
        if first.frame != frame.number:
            self._copied(frame, pkt, first)
            return
        error = pkt.proto is IpProto.ICMP and pkt.icmp_type in ICMP_ERROR_TYPES
        if error:
            self._error(frame, pkt, captured)
            return
        tup = nf_ct_get_tuple(pkt)
        flow = self.flows.get(tup)
        untranslated = False
        if flow is None and tup in self.nat:
            flow, seen = self.nat[tup]
            pkt = pkt.rewritten(seen[0], seen[1], seen[2], seen[3], pkt.ttl)
        elif flow is None:
            flow, pkt, untranslated = self._join(frame, pkt)
        view = nf_ct_get_tuple(pkt)
        direction = ORIGINAL if view == flow.orig else 1 - ORIGINAL
        flow.packets[direction] += 1
        flow.payload[direction] += pkt.payload_len
        flow.last_frame, flow.last_ts_ns = frame.number, frame.ts_ns
        if untranslated:
            flow.untranslated.append(frame.number)
        now = frame.ts_ns / 1e9
        verdicts = [track_datagram(t, pkt, now) for t in self.trackers]
        first.flow, first.verdicts, first.original = flow, verdicts, view == flow.orig and pkt is captured
        if self.on_datagram is not None:
            self.on_datagram(frame, flow, direction, pkt, verdicts)
        for v in verdicts:
            counts = flow.counts.setdefault(v.kernel, {})
            word = datagram_word(v)
            counts[word] = counts.get(word, 0) + 1
        plain = all(v.ctstate in _PLAIN and v.window is TcpAction.ACCEPT for v in verdicts)
        if not plain or untranslated:
            self.on_flagged(
                DatagramFlagged(
                    frame.number,
                    frame.ts_ns,
                    flow.label,
                    DIRECTIONS[direction],
                    captured,
                    verdicts,
                    untranslated,
                )
            )

    def _join(self, frame: Frame, pkt: Packet) -> tuple[Flow, Packet, bool]:
        """A datagram of no known tuple: untranslated, a reply to the NATed address, or new."""
        proto = int(pkt.proto)
        twin = self.by_ports.get((proto, pkt.sport, pkt.dst, pkt.dport))
        reply_to = self.by_ports.get((proto, pkt.dport, pkt.src, pkt.sport))
        if twin is not None and twin.orig[0] != pkt.src and self._looks_inner(pkt.src):
            src, sport, dst, dport, _ = twin.orig
            return twin, pkt.rewritten(src, sport, dst, dport, pkt.ttl), True
        if reply_to is not None and reply_to.orig[0] != pkt.dst and pkt.proto is IpProto.UDP:
            return (
                reply_to,
                pkt.rewritten(pkt.src, pkt.sport, reply_to.orig[0], reply_to.orig[1], pkt.ttl),
                False,
            )
        self._ids[pkt.proto] += 1
        tup = nf_ct_get_tuple(pkt)
        flow = Flow(self._ids[pkt.proto], pkt.proto, tup, frame.number, frame.ts_ns)
        self.flows[tup] = flow
        self.flows[invert_tuple(tup)] = flow
        self.by_ports[(proto, pkt.sport, pkt.dst, pkt.dport)] = flow
        return flow, pkt, False

    def _looks_inner(self, addr: str) -> bool:
        return addr in self.inner_addrs or _private(addr)

    def _error(self, frame: Frame, pkt: Packet, captured: Packet) -> None:
        """An ICMP error: tracked as the kernel does (RELATED to the entry of the packet it
        quotes, else INVALID), the quote and the outer destination seen through NAT first."""
        inner = pkt.inner
        about = None
        if inner is not None:
            quoted = nf_ct_get_tuple(inner)
            hit = self.nat.get(invert_tuple(quoted))
            if hit is not None:  # it quotes the translated packet: conntrack sees the original
                _flow, seen = hit
                back = invert_tuple(seen)
                inner = inner.rewritten(back[0], back[1], back[2], back[3], inner.ttl)
                pkt = Packet(
                    pkt.src, back[0], pkt.sport, pkt.dport, pkt.seq, payload_len=pkt.payload_len,
                    ttl=pkt.ttl, ip_id=pkt.ip_id, proto=pkt.proto, inner=inner,
                )  # fmt: skip
            tup = nf_ct_get_tuple(inner)
            flow_about = self.flows.get(tup)
            about = (
                flow_about.label
                if flow_about is not None
                else self.tcp_label((tup[0], tup[1], tup[2], tup[3]))
            )
        now = frame.ts_ns / 1e9
        verdicts = [track_datagram(t, pkt, now) for t in self.trackers]
        self.on_flagged(DatagramFlagged(frame.number, frame.ts_ns, about or "-", "ERROR", captured, verdicts))

    def _copy(self, frame: Frame, pkt: Packet) -> _Seen:
        """The first copy of the datagram, if it is a later copy of one seen just before
        (:func:`sim.pcap.analyse.is_later_copy`), else the new record of this one."""
        key = (
            int(pkt.proto),
            pkt.ip_id,
            pkt.payload_len,
            pkt.seq,
            pkt.icmp_type if pkt.proto is IpProto.ICMP else 0,
        )
        seen = self._seen.get(key)
        if seen is not None and is_later_copy(seen.iface, seen.ts_ns, frame):
            return seen
        return remember(self._seen, key, _Seen(frame.iface, frame.ts_ns, nf_ct_get_tuple(pkt), frame.number))

    def _copied(self, frame: Frame, pkt: Packet, first: _Seen) -> None:
        """A later copy of ``first``. One NAT rewrote teaches the translation: its reply tuple
        belongs to the flow of the first copy; where it rewrote the originator's source, the
        interface is where the flow's datagrams leave SNATed. A copy of the originator's
        datagram leaving by that interface with the source it arrived with was not translated
        (an INVALID datagram: pod-ip-leak), reported with the verdicts ``first`` got."""
        tup = nf_ct_get_tuple(pkt)
        if tup != first.tup:
            flow = self.flows.get(first.tup)
            if flow is not None:
                self.nat.setdefault(invert_tuple(tup), (flow, invert_tuple(first.tup)))
                if first.original and tup[0] != first.tup[0]:
                    flow.nat_iface = frame.iface
            return
        flow = first.flow
        if flow is not None and first.original and frame.iface == flow.nat_iface:
            flow.untranslated.append(frame.number)
            self.on_flagged(
                DatagramFlagged(
                    frame.number,
                    frame.ts_ns,
                    flow.label,
                    DIRECTIONS[ORIGINAL],
                    pkt,
                    first.verdicts,
                    untranslated=True,
                    copy_of=first.frame,
                )
            )

    def finish(self) -> list[Flow]:
        """The flows in order of appearance (UDP, then ICMP), with each kernel's final flags."""
        flows = sorted(
            {id(f): f for f in self.flows.values()}.values(), key=lambda f: (f.proto != IpProto.UDP, f.id)
        )
        for flow in flows:
            for t in self.trackers:
                flow.states[t.name] = _entry_state(t, flow.orig, float("-inf"), "gone")
        return flows


def icmp_name(pkt: Packet) -> str:
    """``echo``, ``port unreachable``, ... for the report."""
    try:
        name = IcmpType(pkt.icmp_type).name.lower().replace("_", " ")
    except ValueError:
        name = f"type {pkt.icmp_type}"
    return name
