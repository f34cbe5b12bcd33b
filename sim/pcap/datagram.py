"""UDP datagrams and ICMP messages of a capture as conntrack reads them (nf_conntrack_proto_udp.c's
``udp_error``, nf_conntrack_proto_icmp.c's ``icmp_pkt_to_tuple`` and the quoted packet of
``nf_conntrack_inet_error``; RFC 768, RFC 792, RFC 1035 4.1 for a DNS message).

:func:`decode_datagram` reads an IPv4 UDP datagram or ICMP message into the
:class:`sim.packet.Packet` the model's conntrack takes -- an ICMP error with the packet it
quotes as ``inner`` -- plus what the capture tells beyond it (:class:`Datagram`): a UDP
length field that does not fit, a DNS message's header and question. :mod:`sim.pcap.flows`
tracks them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sim.netfilter.profiles import PROFILES
from sim.netfilter.proto_udp import UdpHeaderCheck, udp_error
from sim.packet import ICMP_ERROR_TYPES, IpProto, Packet

_IP = struct.Struct("!BxHHHBB2x4s4s")
_UDP = struct.Struct("!HHH")
_ICMP = struct.Struct("!BBxxHH")
_DNS = struct.Struct("!HHHH")
IP_MF_OFFSET = 0x3FFF
DNS_PORT = 53
QTYPE_A = 1  # RFC 1035 3.2.2
QTYPE_AAAA = 28  # RFC 3596 2.1
_NEWEST = list(PROFILES.values())[-1]


@dataclass(frozen=True, slots=True)
class Dns:
    """A DNS message's header and first question (RFC 1035 4.1.1, 4.1.2)."""

    id: int
    response: bool  # QR
    rcode: int
    answers: int  # ANCOUNT
    qtype: int
    qname: str

    @property
    def qtype_name(self) -> str:
        return {QTYPE_A: "A", QTYPE_AAAA: "AAAA"}.get(self.qtype, f"type {self.qtype}")


@dataclass(frozen=True, slots=True)
class Datagram(Packet):
    """A captured UDP datagram or ICMP message: the model's packet, plus what a capture tells
    beyond it -- a UDP length field that does not fit (``udp_check``, judged by
    ``udp_error()``) and a DNS message's header and question."""

    udp_check: UdpHeaderCheck | None = None  # only when the length field does not fit
    dns: Dns | None = None


class Decoded(str):
    """What a UDP or ICMP frame is ("IPv4 UDP", "IPv4 ICMP"), holding the decoded datagram: the
    reader hands on a reason for every frame that is not a TCP segment, and for these the
    reason carries the packet (:func:`datagram_of`)."""

    datagram: Datagram

    def __new__(cls, what: str, datagram: Datagram) -> Decoded:
        self = super().__new__(cls, what)
        self.datagram = datagram
        return self


def datagram_of(skipped: str) -> Datagram | None:
    """The datagram a frame's ``skipped`` reason holds, if it is one (:class:`Decoded`)."""
    return skipped.datagram if type(skipped) is Decoded else None


def parse_dns(data: bytes | memoryview, off: int, end: int) -> Dns | None:
    """The header and the one question of a DNS message at ``data[off:end]``; None when it is
    not one (no question, a name or type cut off by the snaplen)."""
    if end - off < 12:
        return None
    ident, flags, qdcount, ancount = _DNS.unpack_from(data, off)
    if qdcount != 1:
        return None
    pos, labels = off + 12, []
    while True:
        if pos >= end:
            return None
        n = data[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 or pos + 1 + n > end:  # a pointer or a cut label: not a plain question
            return None
        labels.append(bytes(data[pos + 1 : pos + 1 + n]).decode("ascii", "replace"))
        pos += 1 + n
    if pos + 4 > end:
        return None
    (qtype,) = struct.unpack_from("!H", data, pos)
    return Dns(ident, bool(flags & 0x8000), flags & 0xF, ancount, qtype, ".".join(labels) + ".")


def _quoted(data: bytes | memoryview, off: int, end: int) -> Packet | None:
    """The packet an ICMP error quotes: its IP header and first 8 bytes (RFC 792)."""
    if end - off < 20:
        return None
    vihl, _total, ip_id, _frag, ttl, proto, src, dst = _IP.unpack_from(data, off)
    ihl = (vihl & 0xF) * 4
    l4 = off + ihl
    if vihl >> 4 != 4 or ihl < 20 or l4 + 8 > end or proto not in (1, 6, 17):
        return None
    s, d = _addr(src), _addr(dst)
    if proto == 6:
        sport, dport, seq = struct.unpack_from("!HHI", data, l4)
        return Packet(s, d, sport, dport, seq, ttl=ttl, ip_id=ip_id)
    if proto == 17:
        sport, dport, length = _UDP.unpack_from(data, l4)
        return Packet(
            s, d, sport, dport, payload_len=max(length - 8, 0), ttl=ttl, ip_id=ip_id, proto=IpProto.UDP
        )
    itype, code, ident, seq = _ICMP.unpack_from(data, l4)
    return Packet(s, d, ident, itype << 8 | code, seq, ttl=ttl, ip_id=ip_id, proto=IpProto.ICMP)


def _addr(raw: bytes) -> str:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


def decode_datagram(data: bytes | memoryview, off: int, end: int) -> tuple[None, str]:
    """The IPv4 UDP datagram or ICMP message at ``data[off:end]`` (an IPv4 header the reader
    checked is version 4) -> (None, :class:`Decoded` holding the :class:`Datagram`) or (None,
    what it is instead): the reader's ``(segment, reason)`` for a frame that is no TCP segment.

    Lengths come from the IPv4 total length and the headers, not from the bytes captured
    (``tcpdump -s 96`` keeps them). Fragments are skipped: conntrack sees the datagram only
    reassembled (``nf_defrag_ipv4``). Checksums are not verified (offload), as for TCP."""
    vihl, total, ip_id, frag, ttl, proto, rsrc, rdst = _IP.unpack_from(data, off)
    name = "IPv4 UDP" if proto == IpProto.UDP else "IPv4 ICMP"
    if proto not in (IpProto.UDP, IpProto.ICMP):
        return None, f"IPv4 protocol {proto}"
    if frag & IP_MF_OFFSET:
        return None, "IPv4 fragment"
    ihl = (vihl & 0xF) * 4
    if ihl < 20:
        return None, f"bad IPv4 header length {ihl}"
    l4, available = off + ihl, total - ihl
    if l4 + 8 > end:
        return None, f"{name} header cut by the snaplen"
    src, dst = _addr(bytes(rsrc)), _addr(bytes(rdst))
    if proto == IpProto.UDP:
        sport, dport, length = _UDP.unpack_from(data, l4)
        check = UdpHeaderCheck(available, length)
        fits = udp_error(check, True, 0, _NEWEST) is None  # its length checks read no profile field
        dns = None
        if fits and DNS_PORT in (sport, dport):
            dns = parse_dns(data, l4 + 8, min(end, l4 + length))
        return None, Decoded(
            name,
            Datagram(
                src,
                dst,
                sport,
                dport,
                payload_len=max(min(length, available) - 8, 0),
                ttl=ttl,
                ip_id=ip_id,
                proto=IpProto.UDP,
                udp_check=None if fits else check,
                dns=dns,
            ),
        )
    itype, code, ident, seq = _ICMP.unpack_from(data, l4)
    inner = _quoted(data, l4 + 8, end) if itype in ICMP_ERROR_TYPES else None
    quoted = 28 if inner is not None else 0
    query = itype not in ICMP_ERROR_TYPES
    return None, Decoded(
        name,
        Datagram(
            src,
            dst,
            ident if query else 0,
            itype << 8 | code,
            seq if query else 0,
            payload_len=max(available - 8 - quoted, 0),
            ttl=ttl,
            ip_id=ip_id,
            proto=IpProto.ICMP,
            inner=inner,
        ),
    )
