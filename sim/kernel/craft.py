"""Packets of the replay contract v2 as bytes on the wire: UDP datagrams (RFC 768) and ICMP
messages (RFC 792) beside TCP (:func:`sim.wire.emit`), for the live harness's end hosts.

The packets come from the case loader (:func:`sim.scenario.case.parse_case`), whose
:class:`~sim.packet.Packet` keeps an ICMP header where conntrack's tuple does (``sport`` the
identifier, ``dport`` ``type << 8 | code``) and an error's quoted packet as ``inner``. What
the kernel reads of an ICMP error is what ``icmp_error_message()``
(net/netfilter/nf_conntrack_proto_icmp.c) reads: the quoted IPv4 header and the first 8 bytes
of its transport header (ports for TCP and UDP), from which it finds the entry the error is
RELATED to.
"""

from __future__ import annotations

import struct

from sim import wire
from sim.packet import IP_HEADER_LEN, UDP_HEADER_LEN, IpProto, Packet

CtTuple = tuple[int, str, str, int, int]  # proto, src, dst, then ports or ICMP (id, type)


def ipv4(src: str, dst: str, proto: int, ip_id: int, body: bytes, ttl: int = 64) -> bytes:
    """An IPv4 header (no options, DF set) in front of ``body``."""
    hdr = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            IP_HEADER_LEN + len(body),
            ip_id,
            wire.IP_DF,
            ttl,
            proto,
            0,
            wire.ip_to_bytes(src),
            wire.ip_to_bytes(dst),
        )
    )
    struct.pack_into("!H", hdr, 10, wire.inet_checksum(bytes(hdr)))
    return bytes(hdr) + body


def udp_segment(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header and payload with the RFC 768 checksum over the pseudo-header (a computed
    0 is sent as 0xFFFF, since 0 means "no checksum")."""
    length = UDP_HEADER_LEN + len(payload)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + payload
    pseudo = sum(struct.unpack("!4H", wire.ip_to_bytes(src) + wire.ip_to_bytes(dst))) + IpProto.UDP + length
    csum = wire.inet_checksum(seg, pseudo) or 0xFFFF
    return seg[:6] + struct.pack("!H", csum) + seg[8:]


def quoted(inner: Packet) -> bytes:
    """What an ICMP error carries of the offending datagram: its IP header and 8 bytes
    (UDP: ports, length, no checksum; TCP: ports and the sequence number)."""
    if inner.proto is IpProto.UDP:
        l4 = struct.pack("!HHHH", inner.sport, inner.dport, UDP_HEADER_LEN + inner.payload_len, 0)
    else:
        l4 = struct.pack("!HHI", inner.sport, inner.dport, inner.seq)
    return ipv4(inner.src, inner.dst, inner.proto, 0, l4)


def icmp_message(pkt: Packet) -> bytes:
    """The ICMP header (type, code, checksum, then id/seq, or 4 unused bytes for an error)
    and its data: zeros of ``payload_len``, or the quoted packet."""
    if pkt.inner is None:
        rest, data = struct.pack("!HH", pkt.sport, pkt.seq & 0xFFFF), bytes(pkt.payload_len)
    else:
        rest, data = bytes(4), quoted(pkt.inner)
    msg = bytearray(struct.pack("!BBH", pkt.icmp_type, pkt.icmp_code, 0) + rest + data)
    struct.pack_into("!H", msg, 2, wire.inet_checksum(bytes(msg)))
    return bytes(msg)


def emit(pkt: Packet) -> bytes:
    """The IPv4 datagram of a TCP, UDP or ICMP packet, checksums valid."""
    if pkt.proto is IpProto.TCP:
        return wire.emit(pkt)
    if pkt.proto is IpProto.UDP:
        body = udp_segment(pkt.src, pkt.dst, pkt.sport, pkt.dport, bytes(pkt.payload_len))
    else:
        body = icmp_message(pkt)
    return ipv4(pkt.src, pkt.dst, pkt.proto, pkt.ip_id, body, pkt.ttl)


def ct_tuple(pkt: Packet) -> CtTuple:
    """The tuple of the entry a packet belongs to, as ctnetlink looks it up: protocol,
    addresses, then ports, or for an ICMP query its (id, type); for an ICMP error, the inverse
    of the quoted packet (``nf_ct_invert_tuple()`` in ``icmp_error_message()``)."""
    if pkt.inner is not None:
        i = pkt.inner
        return (int(i.proto), i.dst, i.src, i.dport, i.sport)
    if pkt.proto is IpProto.ICMP:
        return (int(pkt.proto), pkt.src, pkt.dst, pkt.sport, pkt.icmp_type)
    return (int(pkt.proto), pkt.src, pkt.dst, pkt.sport, pkt.dport)
