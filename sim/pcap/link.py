"""What a capture's frames carry, by link type: the link-layer headers, then the IPv4 and TCP
headers (pcap-common.c's ``LINKTYPE_*``, https://www.tcpdump.org/linktypes.html; the headers
of include/uapi/linux/if_ether.h, ip.h, tcp.h).

Ethernet (with 802.1Q and 802.1ad tags and PPPoE sessions), Linux cooked capture v1 and v2
(``tcpdump -i any``), raw IP (both numbers), IPv4, NFLOG (``tcpdump -i nflog:N``: the packets
an ``-j NFLOG`` rule logged, e.g. exactly the INVALID ones; its TLVs per ``pcap/nflog.h``) and
PPP (PPP, PPP in HDLC framing, PPPoE, PPP with direction). An IPv4 TCP segment is decoded
into a :data:`Segment`, its header fields in a tuple: no object is built for a packet until
someone asks for its :class:`sim.packet.Packet` (:func:`segment_packet`).
"""

from __future__ import annotations

import struct
from typing import Final

from sim.packet import Packet, TcpOptions
from sim.pcap.datagram import decode_datagram
from sim.wire import WireError, parse_options

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_PPP = 9
LINKTYPE_PPP_HDLC = 50  # PPP in HDLC-like framing (RFC 1662), also Cisco HDLC (DLT_PPP_SERIAL)
LINKTYPE_PPP_ETHER = 51  # PPPoE session header, then PPP
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_PPP_PPPD = 166  # HDLC framing with the address byte a direction (pppd's records)
LINKTYPE_PPP_WITH_DIR = 204  # one direction byte, then PPP
LINKTYPE_IPV4 = 228
LINKTYPE_NFLOG = 239
LINKTYPE_LINUX_SLL2 = 276
DLT_RAW_OPENBSD = 12  # DLT_RAW on some BSDs, written as-is by old libpcaps
LINK_NAMES = {
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "raw IP",
    DLT_RAW_OPENBSD: "raw IP",
    LINKTYPE_IPV4: "IPv4",
    LINKTYPE_LINUX_SLL: "Linux cooked v1",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2",
    LINKTYPE_NFLOG: "NFLOG",
    LINKTYPE_PPP: "PPP",
    LINKTYPE_PPP_HDLC: "PPP in HDLC framing",
    LINKTYPE_PPP_ETHER: "PPPoE",
    LINKTYPE_PPP_PPPD: "PPP (pppd)",
    LINKTYPE_PPP_WITH_DIR: "PPP with direction",
}
# pcap/nflog.h: a 4-byte header (family, version, resource id = the group, big-endian), then
# TLVs whose length and type are in the capturing host's byte order, each padded to 4.
NFULA_PAYLOAD = 9
AF_INET = 2
AF_INET6 = 10
# PPP protocol numbers (RFC 1661, RFC 1332, RFC 5072) and PPPoE's ethertype (RFC 2516)
PPP_IP = 0x0021
PPP_IPV6 = 0x0057
ETH_P_PPP_SES = 0x8864

ETH_P_IP: Final = 0x0800
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_QINQ1 = 0x9100
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
IPPROTO_TCP: Final = 6
IP_MF_OFFSET: Final = 0x3FFF

_IP: Final = struct.Struct("!BxHHHBB2x4s4s")
_TCP: Final = struct.Struct("!HHIIBBH")
_IP_TCP: Final = struct.Struct("!BxHHHBB2x4s4sHHIIBBH")  # IPv4 header without options, then TCP
_U16: Final = struct.Struct("!H")
_TS_ONLY: Final = b"\x01\x01\x08\x0a"  # NOP NOP TIMESTAMP(10): the options of most Linux segments
_TS_VALS: Final = struct.Struct("!II")


# An IPv4 TCP segment as the reader decoded it, before any object is built for it: (src, dst,
# sport, dport, seq, ack, flags, window, payload length, options, ttl, ip_id, timestamps).
# ``options`` is what conntrack reads of the option block (SACK_PERM, WSCALE, SACK blocks);
# for the layout of nearly every Linux segment, NOP NOP TIMESTAMP and nothing else, it is
# :data:`TIMESTAMPS_ONLY` and ``timestamps`` holds the (TSval, TSecr) pair (else None).
Segment = tuple[str, str, int, int, int, int, int, int, int, TcpOptions, int, int, tuple[int, int] | None]

# A timestamp option and nothing else, as conntrack sees it: ``tcp_options()`` and
# ``tcp_sack()`` read SACK_PERM, WSCALE and SACK, never the timestamp values (which a
# segment's ``timestamps`` keeps for its Packet).
TIMESTAMPS_ONLY: Final = TcpOptions(ts=(0, 0))


def segment_packet(seg: Segment) -> Packet:
    """The :class:`Packet` of a decoded segment."""
    src, dst, sport, dport, seq, ack, flags, win, payload, opts, ttl, ip_id, ts = seg
    if ts is not None:
        opts = TcpOptions(ts=ts)
    return Packet(src, dst, sport, dport, seq, ack, flags, win, payload, opts, ttl, ip_id)


_addr_cache: dict[bytes, str] = {}


def _addr(raw: bytes) -> str:
    s = _addr_cache.get(raw)
    if s is None:
        if len(_addr_cache) > 65536:
            _addr_cache.clear()
        s = _addr_cache[raw] = f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return s


def decode_ipv4(data: bytes | memoryview, off: int, end: int) -> tuple[Segment | None, str]:
    """The IPv4 TCP segment at ``data[off:end]`` -> (Segment, "") or (None, what it is instead)."""
    fused = end - off >= 40 and data[off] == 0x45
    if fused:
        # No IP options (nearly every packet): both headers in one unpack; the TCP half is
        # used only once the checks below found a TCP header there.
        vihl, total, ip_id, frag, ttl, proto, src, dst, sport, dport, seq, ack, doff, flags, win = (
            _IP_TCP.unpack_from(data, off)
        )
    elif end - off < 20:
        return None, "IPv4 header cut by the snaplen"
    else:
        vihl, total, ip_id, frag, ttl, proto, src, dst = _IP.unpack_from(data, off)
    if vihl >> 4 != 4:
        return None, f"IP version {vihl >> 4}"
    if proto != IPPROTO_TCP:
        return decode_datagram(data, off, end)
    if frag & IP_MF_OFFSET:
        return None, "IPv4 fragment"
    ihl = (vihl & 0xF) * 4
    if ihl < 20:
        return None, f"bad IPv4 header length {ihl}"  # what ip_rcv_core() drops (ihl < 5)
    tcp = off + ihl
    if not fused:
        if tcp + 20 > end:
            return None, "TCP header cut by the snaplen"
        sport, dport, seq, ack, doff, flags, win = _TCP.unpack_from(data, tcp)
    doff = (doff >> 4) * 4
    if doff < 20 or tcp + doff > end:
        return None, "TCP header cut by the snaplen"
    ts = None
    if doff == 20:
        opts = _NO_OPTIONS
    elif doff == 32 and data[tcp + 20 : tcp + 24] == _TS_ONLY:
        opts, ts = TIMESTAMPS_ONLY, _TS_VALS.unpack_from(data, tcp + 24)
    else:
        try:
            opts = parse_options(bytes(data[tcp + 20 : tcp + doff]))
        except WireError as e:
            return None, f"bad TCP options ({e})"
    payload = total - ihl - doff
    if payload < 0:
        return None, f"bad IPv4 total length {total}"
    cache = _addr_cache
    return (
        cache.get(src) or _addr(src),
        cache.get(dst) or _addr(dst),
        sport,
        dport,
        seq,
        ack,
        flags,
        win,
        payload,
        opts,
        ttl,
        ip_id,
        ts,
    ), ""


_NO_OPTIONS: Final = TcpOptions()
_ETHERTYPE_NAMES = {ETH_P_IPV6: "IPv6", ETH_P_ARP: "ARP"}


def _ethertype(proto: int, data: bytes | memoryview, off: int, end: int) -> tuple[Segment | None, str]:
    if proto == ETH_P_IP:
        return decode_ipv4(data, off, end)
    if proto == ETH_P_PPP_SES:  # ver/type, code, session id, length, then the PPP protocol
        return _ppp_protocol(data, off + 6, end)
    return None, _ETHERTYPE_NAMES.get(proto, f"ethertype 0x{proto:04x}")


def _ppp_protocol(data: bytes | memoryview, off: int, end: int) -> tuple[Segment | None, str]:
    """A PPP protocol field (one byte when compressed: RFC 1661 6.5, odd first byte) and its
    payload."""
    if end - off < 1:
        return None, "PPP header cut by the snaplen"
    if data[off] & 1:
        proto, off = data[off], off + 1
    elif end - off < 2:
        return None, "PPP header cut by the snaplen"
    else:
        proto, off = _U16.unpack_from(data, off)[0], off + 2
    if proto == PPP_IP:
        return decode_ipv4(data, off, end)
    return None, "IPv6" if proto == PPP_IPV6 else f"PPP protocol 0x{proto:04x}"


def _ppp(data: bytes | memoryview, off: int, end: int) -> tuple[Segment | None, str]:
    """PPP with or without the HDLC address and control bytes (0xff 0x03, RFC 1662); a Cisco
    HDLC frame (address 0x0f or 0x8f, control 0, then an ethertype) as DLT_PPP_SERIAL allows."""
    if end - off >= 2 and data[off] == 0xFF and data[off + 1] == 0x03:
        return _ppp_protocol(data, off + 2, end)
    if end - off >= 4 and data[off] in (0x0F, 0x8F) and data[off + 1] == 0:
        return _ethertype(_U16.unpack_from(data, off + 2)[0], data, off + 4, end)
    return _ppp_protocol(data, off, end)


def decode_nflog(data: bytes | memoryview, off: int, end: int) -> tuple[Segment | None, str, int]:
    """An NFLOG record -> (Segment, "", group) or (None, what it is, group)."""
    if end - off < 4:
        return None, "NFLOG header cut by the snaplen", -1
    family, (group,) = data[off], _U16.unpack_from(data, off + 2)
    pos = off + 4
    while pos + 4 <= end:
        # the host's byte order: a TLV length read the wrong way round is too long or too short
        length, tlv_type = struct.unpack_from("<HH", data, pos)
        if not 4 <= length <= end - pos or tlv_type > 0xFF:
            length, tlv_type = struct.unpack_from(">HH", data, pos)
        if length < 4:
            return None, "bad NFLOG TLV", group
        if tlv_type == NFULA_PAYLOAD:
            if family == AF_INET6:
                return None, "IPv6", group
            if family != AF_INET:
                return None, f"NFLOG family {family}", group
            seg, skipped = decode_ipv4(data, pos + 4, min(pos + length, end))
            return seg, skipped, group
        pos += (length + 3) & ~3
    return None, "NFLOG record without payload", group


def decode_frame(linktype: int, data: bytes | memoryview, off: int, end: int) -> tuple[Segment | None, str]:
    """A frame of ``linktype`` at ``data[off:end]`` -> (Segment, "") or (None, what it is)."""
    if linktype == LINKTYPE_ETHERNET:
        if end - off < 14:
            return None, "Ethernet header cut by the snaplen"
        (proto,) = _U16.unpack_from(data, off + 12)
        off += 14
        if proto == ETH_P_IP:  # the common frame, without the tag loop and _ethertype's call
            return decode_ipv4(data, off, end)
        while proto in (ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ1):  # 802.1Q / 802.1ad tags
            if end - off < 4:
                return None, "VLAN tag cut by the snaplen"
            (proto,) = _U16.unpack_from(data, off + 2)
            off += 4
        return _ethertype(proto, data, off, end)
    if linktype == LINKTYPE_LINUX_SLL:  # pkttype, hatype, halen, addr[8], protocol
        if end - off < 16:
            return None, "SLL header cut by the snaplen"
        return _ethertype(_U16.unpack_from(data, off + 14)[0], data, off + 16, end)
    if linktype == LINKTYPE_LINUX_SLL2:  # protocol, reserved, ifindex, hatype, pkttype, halen, addr[8]
        if end - off < 20:
            return None, "SLL2 header cut by the snaplen"
        return _ethertype(_U16.unpack_from(data, off)[0], data, off + 20, end)
    if linktype == LINKTYPE_NULL:  # 4-byte address family in the writer's byte order
        if end - off < 4:
            return None, "loopback header cut by the snaplen"
        family = int.from_bytes(data[off : off + 4], "little") or int.from_bytes(data[off : off + 4], "big")
        return decode_ipv4(data, off + 4, end) if family == 2 else (None, f"address family {family}")
    if linktype == LINKTYPE_PPP:
        return _ppp(data, off, end)
    if linktype == LINKTYPE_PPP_HDLC:
        return _ppp(data, off, end)
    if linktype == LINKTYPE_PPP_ETHER:
        return _ppp_protocol(data, off + 6, end)
    if linktype == LINKTYPE_PPP_WITH_DIR:
        return _ppp(data, off + 1, end)
    if linktype == LINKTYPE_PPP_PPPD:  # direction byte in the address's place, then control
        return _ppp_protocol(data, off + 2, end)
    # LINKTYPE_RAW, DLT_RAW_OPENBSD, LINKTYPE_IPV4
    if end - off >= 1 and data[off] >> 4 == 6:
        return None, "IPv6"
    return decode_ipv4(data, off, end)


KNOWN_LINKTYPES = frozenset({*LINK_NAMES, LINKTYPE_NULL})


def _sll2_ifindex(data: bytes | memoryview, off: int, caplen: int) -> int:
    """The interface index of a Linux cooked v2 header (``sll2_if_index``, offset 4)."""
    return int.from_bytes(data[off + 4 : off + 8], "big") if caplen >= 8 else 0


def _sll_iface(data: bytes | memoryview, off: int, caplen: int) -> int:
    """A Linux cooked v1 frame's interface as far as its header tells (it has no ifindex): its
    packet type, ARPHRD type, address length and link-layer address (``sll_pkttype`` ..
    ``sll_addr``, offsets 0-13), as a negative number. Interfaces that share them share it:
    a bridge and its port both see a frame addressed to the bridge as ``PACKET_HOST`` from the
    sender's MAC, and both send a reply as ``PACKET_OUTGOING`` from the bridge's MAC."""
    return -1 - int.from_bytes(data[off : off + 14], "big") if caplen >= 14 else -1


# The link types whose frames also tell the interface apart (:func:`special_frame`).
SPECIAL_LINKTYPES: Final = frozenset({LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NFLOG})


def special_frame(
    linktype: int, data: bytes | memoryview, start: int, caplen: int, nflog_group: int | None
) -> tuple[Segment | None, str, int]:
    """The link types whose frames also tell the interface apart: Linux cooked v2 (its
    ifindex), v1 (its header's packet type and address: :func:`_sll_iface`) and NFLOG (its
    group; ``nflog_group`` keeps one)."""
    if linktype == LINKTYPE_LINUX_SLL2:
        seg, skipped = decode_frame(linktype, data, start, start + caplen)
        return seg, skipped, _sll2_ifindex(data, start, caplen)
    if linktype == LINKTYPE_LINUX_SLL:
        seg, skipped = decode_frame(linktype, data, start, start + caplen)
        return seg, skipped, _sll_iface(data, start, caplen)
    seg, skipped, group = decode_nflog(data, start, start + caplen)
    if nflog_group is not None and group != nflog_group:
        return None, f"NFLOG group {group}", group
    return seg, skipped, group
