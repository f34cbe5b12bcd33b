"""IPv4 + TCP wire format: :class:`sim.packet.Packet` <-> bytes (RFC 791, RFC 793, RFC 7323).

The layout mirrors what Linux puts on the wire: ``__ip_make_skb``/``ip_build_and_send_pkt``
for the IPv4 header (no options, DF set, as ``ip_dont_fragment`` does for TCP) and
``tcp_options_write()`` (net/ipv4/tcp_output.c) for the TCP options, in its order:
MSS, SACK_PERM+TIMESTAMP sharing two words (or NOP NOP TIMESTAMP, or NOP NOP SACK_PERM),
NOP WSCALE, NOP NOP SACK blocks. The payload is ``payload_len`` zero bytes, because a
Packet carries only its length.

Everything here is a pure function, in the spirit of smoltcp's ``wire`` module:
:func:`emit` builds bytes, :func:`parse` reads them back, and
``parse(emit(p)) == p`` holds for every valid Packet. Bad input raises :class:`WireError`
with a one-line message. Ethernet framing helpers (IEEE 802.3 / DIX) are at the end, for
AF_PACKET sockets and pcap files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sim.errors import InputError
from sim.packet import (  # re-exported for callers of the wire format
    IP_HEADER_LEN,
    IPPROTO_TCP,
    SEQ_MASK,
    TCP_HEADER_LEN,
    UDP_HEADER_LEN,
    IpProto,
    Packet,
    TcpOptions,
)

# struct iphdr / tcphdr (include/uapi/linux/ip.h, include/uapi/linux/tcp.h)
_IP_HDR = struct.Struct("!BBHHHBBH4s4s")
_TCP_HDR = struct.Struct("!HHIIBBHHH")
IPVERSION = 4
IP_DF = 0x4000
IP_MF = 0x2000
IP_OFFSET = 0x1FFF
IPPROTO_ICMP = 1
IPPROTO_UDP = 17
IP_MAXPACKET = 0xFFFF

# TCP option kinds (TCPOPT_* in include/net/tcp.h) and their lengths (TCPOLEN_*)
TCPOPT_EOL = 0
TCPOPT_NOP = 1
TCPOPT_MSS = 2
TCPOPT_WINDOW = 3
TCPOPT_SACK_PERM = 4
TCPOPT_SACK = 5
TCPOPT_TIMESTAMP = 8
TCPOLEN_MSS = 4
TCPOLEN_WINDOW = 3
TCPOLEN_SACK_PERM = 2
TCPOLEN_TIMESTAMP = 10
TCPOLEN_SACK_BASE = 2
TCPOLEN_SACK_PERBLOCK = 8
MAX_TCP_OPTION_SPACE = 40
TCP_MAX_SACK_BLOCKS = 4  # 40 bytes of option space: NOP NOP + 2 + 4 * 8

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_HLEN = 14
_ETH_HDR = struct.Struct("!6s6sH")


class WireError(InputError):
    """Bytes or a Packet that cannot be encoded or decoded; the message is one line."""


# ---------------------------------------------------------------- checksums


def inet_checksum(data: bytes, initial: int = 0) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's-complement sum."""
    if len(data) % 2:
        data += b"\x00"
    total = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _pseudo_header_sum(src: bytes, dst: bytes, tcp_len: int, proto: int = IPPROTO_TCP) -> int:
    """The sum over the TCP (UDP) pseudo-header (``csum_tcpudp_nofold``)."""
    words = struct.unpack("!4H", src + dst)
    return int(sum(words)) + proto + tcp_len


def tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    """The TCP checksum of ``segment`` (header with a zero checksum field, plus payload)."""
    return inet_checksum(segment, _pseudo_header_sum(src, dst, len(segment)))


# ---------------------------------------------------------------- addresses


def ip_to_bytes(addr: str) -> bytes:
    """``"192.0.2.1"`` -> 4 bytes; raises WireError on anything else."""
    parts = addr.split(".")
    if len(parts) != 4 or not all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts
    ):
        raise WireError(f"not an IPv4 address: {addr!r}")
    return bytes(int(p) for p in parts)


def bytes_to_ip(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def mac_to_bytes(mac: str) -> bytes:
    """``"02:00:00:00:00:01"`` -> 6 bytes; raises WireError on anything else."""
    try:
        raw = bytes(int(p, 16) for p in mac.split(":"))
    except ValueError:
        raise WireError(f"not a MAC address: {mac!r}") from None
    if len(raw) != 6 or not all(len(p) == 2 for p in mac.split(":")):
        raise WireError(f"not a MAC address: {mac!r}")
    return raw


def bytes_to_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# ---------------------------------------------------------------- TCP options


def emit_options(opts: TcpOptions) -> bytes:
    """TCP option bytes in ``tcp_options_write()`` order; ``len == opts.wire_length()``."""
    out = bytearray()
    if opts.mss is not None:
        if not 0 <= opts.mss <= 0xFFFF:
            raise WireError(f"mss {opts.mss} out of range 0..65535")
        out += struct.pack("!BBH", TCPOPT_MSS, TCPOLEN_MSS, opts.mss)
    if opts.ts is not None:
        tsval, tsecr = opts.ts
        for name, v in (("ts value", tsval), ("ts echo reply", tsecr)):
            if not 0 <= v <= SEQ_MASK:
                raise WireError(f"{name} {v} out of range 0..2**32-1")
        if opts.sack_perm:
            out += bytes((TCPOPT_SACK_PERM, TCPOLEN_SACK_PERM, TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP))
        else:
            out += bytes((TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP))
        out += struct.pack("!II", tsval, tsecr)
    elif opts.sack_perm:
        out += bytes((TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK_PERM, TCPOLEN_SACK_PERM))
    if opts.wscale is not None:
        if not 0 <= opts.wscale <= 255:
            raise WireError(f"wscale {opts.wscale} out of range 0..255")
        out += bytes((TCPOPT_NOP, TCPOPT_WINDOW, TCPOLEN_WINDOW, opts.wscale))
    if opts.sack:
        n = len(opts.sack)
        out += bytes((TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK, TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK * n))
        for left, right in opts.sack:
            if not (0 <= left <= SEQ_MASK and 0 <= right <= SEQ_MASK):
                raise WireError(f"sack block ({left}, {right}) out of range 0..2**32-1")
            out += struct.pack("!II", left, right)
    if len(out) > MAX_TCP_OPTION_SPACE:
        raise WireError(f"TCP options need {len(out)} bytes, more than the {MAX_TCP_OPTION_SPACE} allowed")
    return bytes(out)


def parse_options(raw: bytes) -> TcpOptions:
    """Read the options ``tcp_parse_options()`` knows; others are skipped by their length."""
    mss: int | None = None
    wscale: int | None = None
    sack_perm = False
    sack: tuple[tuple[int, int], ...] = ()
    ts: tuple[int, int] | None = None
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= len(raw):
            raise WireError(f"TCP option {kind} truncated at offset {i}")
        size = raw[i + 1]
        if size < 2 or i + size > len(raw):
            raise WireError(f"TCP option {kind} has bad length {size} at offset {i}")
        body = raw[i + 2 : i + size]
        if kind == TCPOPT_MSS and size == TCPOLEN_MSS:
            mss = struct.unpack("!H", body)[0]
        elif kind == TCPOPT_WINDOW and size == TCPOLEN_WINDOW:
            wscale = body[0]
        elif kind == TCPOPT_SACK_PERM and size == TCPOLEN_SACK_PERM:
            sack_perm = True
        elif kind == TCPOPT_TIMESTAMP and size == TCPOLEN_TIMESTAMP:
            ts = struct.unpack("!II", body)
        elif kind == TCPOPT_SACK and (size - TCPOLEN_SACK_BASE) % TCPOLEN_SACK_PERBLOCK == 0:
            words = struct.unpack(f"!{(size - 2) // 4}I", body)
            sack = tuple((words[j], words[j + 1]) for j in range(0, len(words), 2))
        i += size
    return TcpOptions(mss=mss, wscale=wscale, sack_perm=sack_perm, sack=sack, ts=ts)


# ---------------------------------------------------------------- IPv4 + TCP


def _check_packet(p: Packet) -> None:
    for name, v, hi in (
        ("sport", p.sport, 0xFFFF),
        ("dport", p.dport, 0xFFFF),
        ("seq", p.seq, SEQ_MASK),
        ("ack", p.ack, SEQ_MASK),
        ("flags", p.flags, 0xFF),
        ("window", p.window, 0xFFFF),
        ("ttl", p.ttl, 0xFF),
        ("ip_id", p.ip_id, 0xFFFF),
    ):
        if not 0 <= v <= hi:
            raise WireError(f"{name} {v} out of range 0..{hi}")
    if p.payload_len < 0:
        raise WireError(f"payload_len {p.payload_len} is negative")


def _ipv4(p: Packet, proto: int, body: bytes) -> bytes:
    """An IPv4 header (no options, DF set) for ``p``'s addresses in front of ``body``."""
    src, dst = ip_to_bytes(p.src), ip_to_bytes(p.dst)
    ip = bytearray(
        _IP_HDR.pack(
            (IPVERSION << 4) | 5, 0, IP_HEADER_LEN + len(body), p.ip_id, IP_DF, p.ttl, proto, 0, src, dst
        )
    )
    struct.pack_into("!H", ip, 10, inet_checksum(bytes(ip)))
    return bytes(ip) + body


def _udp_body(p: Packet) -> bytes:
    """RFC 768: ports, length and the checksum over the pseudo-header (a computed 0 is sent
    as 0xFFFF: 0 means "no checksum"; ``bad_checksum`` adds one)."""
    length = UDP_HEADER_LEN + p.payload_len
    seg = bytearray(struct.pack("!HHHH", p.sport, p.dport, length, 0) + bytes(p.payload_len))
    csum = inet_checksum(
        bytes(seg), _pseudo_header_sum(ip_to_bytes(p.src), ip_to_bytes(p.dst), length, IPPROTO_UDP)
    )
    csum = (csum or 0xFFFF) + (1 if p.bad_checksum else 0)
    struct.pack_into("!H", seg, 6, csum & 0xFFFF)
    return bytes(seg)


def _quoted(inner: Packet) -> bytes:
    """What an ICMP error carries of the offending datagram: its IP header and 8 bytes (UDP:
    ports, length, no checksum; TCP: ports and the sequence number)."""
    if inner.proto is IpProto.UDP:
        l4 = struct.pack("!HHHH", inner.sport, inner.dport, UDP_HEADER_LEN + inner.payload_len, 0)
    else:
        l4 = struct.pack("!HHI", inner.sport, inner.dport, inner.seq)
    return _ipv4(inner, int(inner.proto), l4)


def _icmp_body(p: Packet) -> bytes:
    """RFC 792: type, code, checksum, then identifier and sequence (a query) or 4 unused bytes
    and the quoted packet (an error), then ``payload_len`` zero bytes."""
    if p.inner is None:
        rest, data = struct.pack("!HH", p.sport, p.seq & 0xFFFF), bytes(p.payload_len)
    else:
        rest, data = bytes(4), _quoted(p.inner) + bytes(p.payload_len)
    msg = bytearray(struct.pack("!BBH", p.icmp_type, p.icmp_code, 0) + rest + data)
    csum = inet_checksum(bytes(msg)) + (1 if p.bad_checksum else 0)
    struct.pack_into("!H", msg, 2, csum & 0xFFFF)
    return bytes(msg)


def emit(p: Packet) -> bytes:
    """The IPv4 datagram carrying ``p``, with correct IP and TCP (UDP, ICMP) checksums.

    When ``p.bad_checksum`` is set the transport checksum is deliberately wrong (the correct
    value plus one), which ``tcp_error()`` reports as "bad checksum".
    """
    _check_packet(p)
    if p.proto is IpProto.UDP:
        return _ipv4(p, IPPROTO_UDP, _udp_body(p))
    if p.proto is IpProto.ICMP:
        return _ipv4(p, IPPROTO_ICMP, _icmp_body(p))
    src, dst = ip_to_bytes(p.src), ip_to_bytes(p.dst)
    opts = emit_options(p.options)
    tcp_len = TCP_HEADER_LEN + len(opts)
    total = IP_HEADER_LEN + tcp_len + p.payload_len
    if total > IP_MAXPACKET:
        raise WireError(f"IPv4 total length {total} exceeds {IP_MAXPACKET}")
    doff = tcp_len // 4
    tcp = bytearray(_TCP_HDR.pack(p.sport, p.dport, p.seq, p.ack, doff << 4, p.flags, p.window, 0, 0))
    tcp += opts
    tcp += bytes(p.payload_len)
    csum = tcp_checksum(src, dst, bytes(tcp))
    if p.bad_checksum:
        csum = (csum + 1) & 0xFFFF
    struct.pack_into("!H", tcp, 16, csum)
    ip = bytearray(
        _IP_HDR.pack((IPVERSION << 4) | 5, 0, total, p.ip_id, IP_DF, p.ttl, IPPROTO_TCP, 0, src, dst)
    )
    struct.pack_into("!H", ip, 10, inet_checksum(bytes(ip)))
    return bytes(ip) + bytes(tcp)


@dataclass(frozen=True, slots=True)
class IpHeader:
    """The fields of an IPv4 header that :func:`parse_ip` reports besides the payload."""

    src: str
    dst: str
    proto: int
    ttl: int
    ip_id: int
    total_len: int
    header_len: int


def parse_ip(data: bytes) -> tuple[IpHeader, bytes]:
    """Split an IPv4 datagram into its header and its payload (trailing padding dropped)."""
    if len(data) < IP_HEADER_LEN:
        raise WireError(f"IPv4 datagram of {len(data)} bytes is shorter than a header")
    vihl, _tos, total, ip_id, frag, ttl, proto, _csum, src, dst = _IP_HDR.unpack_from(data)
    if vihl >> 4 != IPVERSION:
        raise WireError(f"IP version {vihl >> 4}, expected 4")
    ihl = (vihl & 0xF) * 4
    if ihl < IP_HEADER_LEN or total < ihl or total > len(data):
        raise WireError(f"bad IPv4 lengths: ihl {ihl}, total {total}, have {len(data)} bytes")
    if inet_checksum(data[:ihl]) != 0:
        raise WireError("bad IPv4 header checksum")
    if frag & (IP_MF | IP_OFFSET):
        raise WireError("IPv4 fragments are not supported")
    hdr = IpHeader(bytes_to_ip(src), bytes_to_ip(dst), proto, ttl, ip_id, total, ihl)
    return hdr, data[ihl:total]


def parse(data: bytes) -> Packet:
    """An IPv4 datagram carrying TCP -> Packet; the inverse of :func:`emit`.

    A wrong TCP checksum is not an error: it comes back as ``bad_checksum=True``.
    """
    hdr, seg = parse_ip(data)
    if hdr.proto != IPPROTO_TCP:
        raise WireError(f"IP protocol {hdr.proto} is not TCP")
    if len(seg) < TCP_HEADER_LEN:
        raise WireError(f"TCP segment of {len(seg)} bytes is shorter than a header")
    sport, dport, seq, ack, doff_byte, flags, window, _csum, _urg = _TCP_HDR.unpack_from(seg)
    doff = (doff_byte >> 4) * 4
    if doff < TCP_HEADER_LEN or doff > len(seg):
        raise WireError(f"bad TCP data offset {doff} for a {len(seg)}-byte segment")
    opts = parse_options(seg[TCP_HEADER_LEN:doff])
    bad = tcp_checksum(ip_to_bytes(hdr.src), ip_to_bytes(hdr.dst), seg) != 0
    return Packet(
        src=hdr.src,
        dst=hdr.dst,
        sport=sport,
        dport=dport,
        seq=seq,
        ack=ack,
        flags=flags,
        window=window,
        payload_len=len(seg) - doff,
        options=opts,
        ttl=hdr.ttl,
        ip_id=hdr.ip_id,
        bad_checksum=bad,
    )


# ---------------------------------------------------------------- Ethernet


def emit_eth(dst_mac: str, src_mac: str, payload: bytes, ethertype: int = ETH_P_IP) -> bytes:
    """An Ethernet II frame (no FCS, as AF_PACKET and pcap carry it)."""
    return _ETH_HDR.pack(mac_to_bytes(dst_mac), mac_to_bytes(src_mac), ethertype) + payload


def parse_eth(frame: bytes) -> tuple[str, str, int, bytes]:
    """An Ethernet II frame -> (dst_mac, src_mac, ethertype, payload)."""
    if len(frame) < ETH_HLEN:
        raise WireError(f"Ethernet frame of {len(frame)} bytes is shorter than a header")
    dst, src, ethertype = _ETH_HDR.unpack_from(frame)
    return bytes_to_mac(dst), bytes_to_mac(src), ethertype, frame[ETH_HLEN:]
