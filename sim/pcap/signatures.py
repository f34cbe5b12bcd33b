"""The scenario library's incidents as a capture shows them (``nflab pcap``'s signatures).

Each signature names the packets it rests on; a capture without the pattern names nothing.

- ``dns-race`` (glibc's A and AAAA queries racing to ``__nf_conntrack_confirm``: the loser is
  dropped with ``insert_failed``): two queries from one socket, the second before any answer
  (glibc ``send_dg`` sends both at once), exactly one of them answered, and the same socket
  asking again ``RES_TIMEOUT`` (5 s, resolv.h) later. With the DNS messages readable the pair
  must be A and AAAA for one name and the answers are matched by their ID; without (a capture
  cut short, zeroed payloads) by count.
- ``snat-port-clash`` (two containers' SYNs from the same source port to the same service
  both keep the port in MASQUERADE -- ``nf_nat_used_tuple`` sees only confirmed entries -- and
  the second to confirm is dropped, ``insert_failed``): a SYN from one container address
  sent again (the same sequence number, no SYN/ACK before it) after another container's SYN
  from the same source port to the same address and port within ``TCP_TIMEOUT_INIT`` (1 s,
  include/net/tcp.h). When the capture ends before the retransmission could come, the
  unanswered SYN is named with that said.
- ``pod-ip-leak`` (an INVALID packet skips MASQUERADE): packets that left the host with the
  container's address where their connection's other packets left translated -- the
  analysis' untranslated packets, TCP (:mod:`sim.pcap.analyse`) and UDP/ICMP
  (:mod:`sim.pcap.flows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sim.packet import TCPHDR_ACK, TCPHDR_SYN, IpProto, Packet, format_flags
from sim.pcap.analyse import Connection, CtTuple, Flagged, Verdict
from sim.pcap.datagram import QTYPE_A, QTYPE_AAAA, Dns, datagram_of
from sim.pcap.flows import DatagramFlagged, Flow
from sim.pcap.reader import Frame

NS = 1_000_000_000
RES_TIMEOUT_NS = 5 * NS  # glibc resolv.h RES_TIMEOUT: "min. seconds between retries"
RETRY_SLACK_NS = NS // 2  # the retry leaves RES_TIMEOUT after the pair, give or take scheduling
PAIR_WINDOW_NS = NS  # both queries leave before any answer, well within the timeout
TCP_TIMEOUT_INIT_NS = NS  # include/net/tcp.h: the first SYN retransmission (RFC 6298)
TCP_RTO_MIN_NS = NS // 5  # include/net/tcp.h: nothing is retransmitted sooner
MAX_LISTED = 20
DNS_PORT = 53


class SignatureName(StrEnum):
    """The scenario library's names (``nflab run NAME``)."""

    DNS_RACE = "dns-race"
    SNAT_PORT_CLASH = "snat-port-clash"
    POD_IP_LEAK = "pod-ip-leak"


@dataclass(slots=True)
class Signature:
    """One occurrence: its name, the frames it rests on (role -> frame numbers), in words."""

    name: SignatureName
    frames: dict[str, list[int]]
    text: str
    capture: str = ""  # FILE2 (the container's capture) when found there; "" for FILE

    def json(self) -> dict[str, Any]:
        return {"name": str(self.name), "capture": self.capture, "frames": self.frames, "text": self.text}


def _s(ns: int) -> str:
    return f"{ns / NS:.3f} s"


# ---------------------------------------------------------------- dns-race


@dataclass(slots=True)
class _Query:
    frame: int
    ts_ns: int
    dns: Dns | None


@dataclass(slots=True)
class _Socket:
    """One client socket's lookup waiting for its retry: the query or the pair of queries sent
    at once (``pending``), whether an answer came between them, and the answers it got."""

    pending: tuple[_Query, ...] = ()
    answered: bool = False
    answers: list[tuple[int, Dns | None]] = field(default_factory=list)


def _is_pair(a: _Query, b: _Query) -> bool:
    """Two queries glibc sends at once: A and AAAA for one name (when readable)."""
    if b.ts_ns - a.ts_ns > PAIR_WINDOW_NS:
        return False
    if a.dns is None or b.dns is None:
        return a.dns is None and b.dns is None
    return {a.dns.qtype, b.dns.qtype} == {QTYPE_A, QTYPE_AAAA} and a.dns.qname == b.dns.qname


class DnsRace:
    """Watches the DNS datagrams of a capture (``on_datagram`` of
    :class:`sim.pcap.flows.DatagramAnalysis`) for the dns-race signature; memory: one small
    record per client socket.

    Two forms: where the capture shows the pair (the container's side), two queries, one
    answer, the retry; where the lost query never reached the capture (the host's uplink, the
    loser dropped at confirmation), one query answered and the same socket asking again --
    for the other type, when readable -- ``RES_TIMEOUT`` later, which a resolver does only
    while it waits for the answer to a query this capture never saw."""

    def __init__(self, capture: str = "") -> None:
        self.capture = capture
        self.sockets: dict[tuple[str, int], _Socket] = {}
        self.found: list[Signature] = []

    def on_datagram(self, frame: Frame, flow: Flow, direction: int, pkt: Packet, _v: list[Verdict]) -> None:
        if pkt.proto is not IpProto.UDP:
            return
        datagram = datagram_of(frame.skipped)
        dns = datagram.dns if datagram is not None else None
        client, server = flow.orig[:2], flow.orig[2:4]
        if server[1] != DNS_PORT or client[1] == DNS_PORT:
            return
        sock = self.sockets.setdefault((client[0], client[1]), _Socket())
        if direction == 0 and not (dns is not None and dns.response):
            self._query(sock, _Query(frame.number, frame.ts_ns, dns), flow)
        elif direction == 1 and sock.pending:
            sock.answered = True
            if frame.ts_ns - sock.pending[0].ts_ns < RES_TIMEOUT_NS - RETRY_SLACK_NS:
                sock.answers.append((frame.number, dns))

    def _query(self, sock: _Socket, q: _Query, flow: Flow) -> None:
        pending = sock.pending
        waited = q.ts_ns - pending[0].ts_ns if pending else 0
        if pending and waited >= RES_TIMEOUT_NS - RETRY_SLACK_NS:
            sig = None
            if waited <= RES_TIMEOUT_NS + RETRY_SLACK_NS:
                sig = self._signature(pending, sock.answers, q, flow)
            if sig is not None:
                sig.capture = self.capture
                self.found.append(sig)
            pending = ()
        if not pending:
            sock.pending, sock.answered, sock.answers = (q,), False, []
        elif len(pending) == 1 and not sock.answered and _is_pair(pending[0], q):
            sock.pending = (pending[0], q)

    @staticmethod
    def _missing(pair: tuple[_Query, ...], answers: list[tuple[int, Dns | None]]) -> _Query | None:
        """The query of the pair left without an answer when exactly one is missing."""
        a, b = pair
        if a.dns is None or b.dns is None:
            return b if len(answers) == 1 else None  # by count: which one is not known
        ids = {d.id for _, d in answers if d is not None}
        left = [q for q in pair if q.dns is not None and q.dns.id not in ids]
        return left[0] if len(left) == 1 else None

    @classmethod
    def _signature(
        cls, pending: tuple[_Query, ...], answers: list[tuple[int, Dns | None]], retry: _Query, flow: Flow
    ) -> Signature | None:
        src, sport, dst, dport, _ = flow.orig
        where = f"from one socket {src}:{sport} to {dst}:{dport}"
        a = pending[0]
        frames = {
            "queries": [q.frame for q in pending],
            "answers": [n for n, _ in answers],
            "retry": [retry.frame],
        }
        later = f"{_s(retry.ts_ns - a.ts_ns)} later (frame {retry.frame})"
        if len(pending) == 2:
            missing = cls._missing(pending, answers)
            if missing is None:
                return None
            b = pending[1]
            if a.dns is not None and b.dns is not None and missing.dns is not None:
                what = f"{a.dns.qtype_name} and {b.dns.qtype_name} queries for {a.dns.qname}"
                lost = f"the {missing.dns.qtype_name} query (frame {missing.frame}, id {missing.dns.id})"
                lost += " got none"
            else:
                what, lost = "two queries", "the other got none"
            head = (
                f"dns-race: frames {a.frame} and {b.frame}: {what} {where} at once; one was answered "
                f"(frame {answers[0][0]}), {lost}, and the socket asked again {later}"
            )
        else:
            if not answers or not cls._other_half(a, answers, retry):
                return None
            what = f"the {a.dns.qtype_name} query for {a.dns.qname}" if a.dns is not None else "a query"
            again = f"for {retry.dns.qtype_name}" if retry.dns is not None else "again"
            head = (
                f"dns-race: frame {a.frame}: {what} {where} was answered (frame {answers[0][0]}), and "
                f"the socket asked {again} {later}: it was waiting for the answer to a query that "
                "does not appear in this capture, the other of the pair glibc sends at once, lost "
                "before it got here"
            )
        return Signature(
            SignatureName.DNS_RACE,
            frames,
            f"{head}: glibc's 5-second resolver timeout after one query of the pair was lost. On a "
            "host NATing this traffic that is the conntrack insertion race (the loser dropped at "
            "confirmation, insert_failed in conntrack -S). Fixes: options single-request-reopen, TCP "
            "DNS (use-vc), a node-local cache without NAT, a kernel that resolves the clash (see "
            "nflab run dns-race --kernel K).",
        )

    @staticmethod
    def _other_half(a: _Query, answers: list[tuple[int, Dns | None]], retry: _Query) -> bool:
        """Is ``retry`` the other query of a pair whose first, ``a``, was answered? Readable: ``a``
        answered by ID, ``retry`` the other of A and AAAA for the same name; else by count."""
        if a.dns is None or retry.dns is None:
            return a.dns is None and retry.dns is None
        answered = any(d is not None and d.id == a.dns.id for _, d in answers)
        same_name = retry.dns.qname == a.dns.qname
        return answered and same_name and {a.dns.qtype, retry.dns.qtype} == {QTYPE_A, QTYPE_AAAA}


# ---------------------------------------------------------------- snat-port-clash


def clash_candidates(conns: Iterable[Connection]) -> list[list[Connection]]:
    """Connections opened (handshake seen) from different addresses with the same source
    port to the same address and port, their first SYNs within TCP_TIMEOUT_INIT."""
    groups: dict[tuple[int, str, int], list[Connection]] = {}
    for c in conns:
        if not c.picked_up:
            groups.setdefault((c.orig[1], c.orig[2], c.orig[3]), []).append(c)
    out = []
    for members in groups.values():
        close = [
            c
            for c in members
            if any(
                o.orig[0] != c.orig[0] and abs(o.first_ts_ns - c.first_ts_ns) <= TCP_TIMEOUT_INIT_NS
                for o in members
            )
        ]
        if len(close) > 1:
            out.append(close)
    return out


@dataclass(slots=True)
class _Handshake:
    syns: list[tuple[int, int, int]] = field(default_factory=list)  # (frame, ts_ns, seq)
    synack: tuple[int, int] | None = None  # the first SYN/ACK: (frame, ts_ns)


def port_clash(frames: Iterable[Frame], groups: list[list[Connection]], last_ts_ns: int) -> list[Signature]:
    """The snat-port-clash signature among the candidate ``groups`` (:func:`clash_candidates`);
    ``frames``: the capture again, read only when there are candidates."""
    if not groups:
        return []
    wanted: dict[CtTuple, _Handshake] = {c.orig: _Handshake() for g in groups for c in g}
    for fr in frames:
        p = fr.pkt
        if p is None or p.proto is not IpProto.TCP or not p.flags & TCPHDR_SYN:
            continue
        hs = wanted.get((p.src, p.sport, p.dst, p.dport))
        if hs is not None and not p.flags & TCPHDR_ACK:
            hs.syns.append((fr.number, fr.ts_ns, p.seq))
            continue
        hs = wanted.get((p.dst, p.dport, p.src, p.sport))
        if hs is not None and p.flags & TCPHDR_ACK and hs.synack is None:
            hs.synack = (fr.number, fr.ts_ns)
    out = []
    for group in groups:
        for lost in group:
            sig = _clash(lost, group, wanted, last_ts_ns)
            if sig is not None:
                out.append(sig)
    return out


def _clash(
    lost: Connection, group: list[Connection], hs: dict[CtTuple, _Handshake], last_ts_ns: int
) -> Signature | None:
    mine = hs[lost.orig]
    if not mine.syns:
        return None
    first, ts, seq = mine.syns[0]
    answered = mine.synack[0] if mine.synack is not None else None  # by frame: stamps may tie
    again = next(
        (
            (n, t)
            for n, t, s in mine.syns[1:]
            if s == seq and t - ts >= TCP_RTO_MIN_NS and (answered is None or n < answered)
        ),
        None,
    )
    cut = again is None and answered is None and last_ts_ns - ts < TCP_TIMEOUT_INIT_NS
    if again is None and not cut:
        return None
    other = next(
        (
            (o, hs[o.orig])
            for o in group
            if o.orig[0] != lost.orig[0]
            and hs[o.orig].syns
            and abs(hs[o.orig].syns[0][1] - ts) <= TCP_TIMEOUT_INIT_NS
            and (again is None or hs[o.orig].syns[0][1] < again[1])
        ),
        None,
    )
    if other is None:
        return None
    o, ohs = other
    src, sport, dst, dport = lost.orig
    ofr = ohs.syns[0][0]
    oans = f", answered in frame {ohs.synack[0]}" if ohs.synack is not None else ""
    if again is not None:
        tail = (
            f"sent again {_s(again[1] - ts)} later (frame {again[0]}) with no SYN/ACK before it: the "
            "client waited a SYN retransmission"
        )
        frames = {"syn": [first], "other_syn": [ofr], "retransmission": [again[0]]}
    else:
        tail = (
            f"no SYN/ACK before the capture ends {_s(last_ts_ns - ts)} later, sooner than its "
            "retransmission (TCP_TIMEOUT_INIT, 1 s) could come"
        )
        frames = {"syn": [first], "other_syn": [ofr], "retransmission": []}
    return Signature(
        SignatureName.SNAT_PORT_CLASH,
        frames,
        f"snat-port-clash: frame {first}: the SYN {src}:{sport} > {dst}:{dport} (seq {seq}) and frame "
        f"{ofr}: another container's SYN {o.orig[0]}:{sport} from the same source port to the same "
        f"service{oans}; the first got {tail}. Behind one MASQUERADE address both keep port {sport} "
        "(nf_nat_used_tuple sees only confirmed entries) and the second to confirm is dropped "
        "(insert_failed). Fix: MASQUERADE --random-fully.",
    )


# ---------------------------------------------------------------- pod-ip-leak


def pod_ip_leak(
    tcp: list[Flagged], tcp_count: int, datagrams: list[DatagramFlagged], conns: dict[int, Connection]
) -> list[Signature]:
    """The packets that left with the container's address (the analyses' untranslated ones)."""
    if not tcp_count and not datagrams:
        return []
    shown: list[Flagged | DatagramFlagged] = [*tcp]
    shown = [*shown, *datagrams][:MAX_LISTED]
    total = tcp_count + len(datagrams)
    more = f" and {total - len(shown)} more" if total > len(shown) else ""
    examples = []
    for f in shown[:3]:
        p, v = f.pkt, f.verdicts[0] if f.verdicts else None
        flags = f" [{format_flags(p.flags)}]" if p.proto is IpProto.TCP else f" {p.proto.name}"
        translated = ""
        if isinstance(f, Flagged) and f.conn in conns:
            translated = f", its connection #{f.conn}'s other packets leaving as {conns[f.conn].orig[0]}"
        verdict = (
            f"; conntrack on {v.kernel}: {v.ctstate.name}{f' ({v.reason})' if v.reason else ''}" if v else ""
        )
        examples.append(f"frame {f.frame} {p.src}:{p.sport} > {p.dst}:{p.dport}{flags}{translated}{verdict}")
    frames = ", ".join(str(f.frame) for f in shown) + more
    return [
        Signature(
            SignatureName.POD_IP_LEAK,
            {"leaked": [f.frame for f in shown]},
            f"pod-ip-leak: {total} packet(s) left the host with the container's own (pre-NAT) source "
            f"address: frames {frames} (e.g. {'; '.join(examples)}). A packet conntrack marks INVALID has "
            "no entry, so MASQUERADE in nat POSTROUTING skips it (moby#18630). Fixes: "
            "iptables -A FORWARD -m conntrack --ctstate INVALID -j DROP, "
            "net.netfilter.nf_conntrack_tcp_be_liberal=1.",
        )
    ]


def signature_lines(found: list[Signature]) -> list[str]:
    if not found:
        return [f"- none of {', '.join(str(n) for n in SignatureName)}."]
    return [f"- {f'in {s.capture}: ' if s.capture else ''}{s.text}" for s in found]
