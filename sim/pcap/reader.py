"""Capture files as tcpdump and dumpcap write them: libpcap (sf-pcap.c) and pcapng (sf-pcapng.c).

:func:`read_frames` streams a capture in blocks of :data:`CHUNK` bytes (memory stays bounded
whatever the file's size) and yields one :class:`Frame` per record, numbered from 1 as
Wireshark and tshark number them. Each frame carries its time in nanoseconds since the Unix
epoch and, for IPv4 TCP, the segment's header fields (a :data:`Segment`; its
:class:`sim.packet.Packet` is built only when asked for) -- decoded from the
headers alone, so captures cut by a small snaplen (``tcpdump -s 96``) keep their payload
lengths, which come from the IPv4 total length, not from the bytes captured. Checksums are
not verified: captures taken on the sending host carry the partial checksums of checksum
offload.

Link types (``LINKTYPE_*``, https://www.tcpdump.org/linktypes.html): Ethernet (with 802.1Q
and 802.1ad tags and PPPoE sessions), Linux cooked capture v1 and v2 (``tcpdump -i any``),
raw IP (both numbers), IPv4, NFLOG (``tcpdump -i nflog:N``: the packets an ``-j NFLOG``
rule logged, e.g. exactly the INVALID ones; its TLVs per ``pcap/nflog.h``) and PPP (PPP,
PPP in HDLC framing, PPPoE, PPP with direction). Anything else, a bad magic, a block or
option libpcap's ``sf-pcapng.c`` refuses, or a record that claims more bytes than a capture
may hold raise :class:`CaptureError`: one line naming the file and the frame. A capture cut
off mid-frame (tcpdump killed, a disk full) is read up to its last complete frame and the
cut reported through ``warn``, as tshark does ("appears to have been cut short in the
middle of a packet"); without ``warn`` it is a CaptureError.

The reader is this module rather than dpkt because it is faster on what nflab needs. Measured
on the bench capture (141,591 frames of a real upload, CPU time, this machine): this reader
yields 217,000 frames/s with a :class:`sim.packet.Packet` each; dpkt 1.9.8 gets through
97,000 frames/s doing less (``dpkt.pcap.Reader`` + ``Ethernet`` + ``tcp.parse_opts``, no Packet
built), because it builds an object per protocol layer, while this reader unpacks the three
headers with one ``struct`` call each. dpkt would also be a new dependency.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from sim.errors import InputError
from sim.packet import Packet, TcpOptions
from sim.pcap.datagram import decode_datagram
from sim.wire import WireError, parse_options

CHUNK = 1 << 20

# pcap/pcap.h, pcap-common.c, sf-pcap.c
TCPDUMP_MAGIC = 0xA1B2C3D4
NSEC_TCPDUMP_MAGIC = 0xA1B23C4D
# pcapng block types (draft-ietf-opsawg-pcapng)
BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_PB = 0x00000002  # obsolete Packet Block
BT_SPB = 0x00000003
BT_EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
IF_TSRESOL = 9
# The largest record libpcap accepts (MAXIMUM_SNAPLEN in pcap-int.h) and the largest
# pcapng block it reads (MAX_BLOCKSIZE in sf-pcapng.c).
MAXIMUM_SNAPLEN = 262_144
MAX_BLOCKSIZE = 16 * 1024 * 1024

PCAP_NG_VERSIONS = ((1, 0), (1, 2))  # what sf-pcapng.c reads ("1.2 is treated as 1.0")
SHB_MIN = 28  # block header 8 + byte-order magic, versions, section length 16 + trailer 4
IDB_MIN = 20  # block header 8 + linktype, reserved, snaplen 8 + trailer 4
EPB_MIN = 32  # block header 8 + interface, timestamp, caplen, len 20 + trailer 4
PB_MIN = 32
SPB_MIN = 16
OPT_ENDOFOPT = 0

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


class CaptureError(InputError):
    """A capture nflab cannot read; the message is one line naming the file and the frame."""


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


@dataclass(slots=True)
class Frame:
    """One record of a capture: its number (from 1), time, length on the wire and what it holds.

    ``seg`` is the IPv4 TCP segment's header fields (:data:`Segment`), or None with
    ``skipped`` saying what the frame is instead ("IPv6", "ARP", "IPv4 UDP", "TCP header
    cut by the snaplen", ...); ``pkt`` is the segment as a :class:`sim.packet.Packet`, built
    when first asked for (most frames of a capture never need one). ``iface`` tells the
    capture's interfaces apart: the ifindex of a Linux cooked v2 frame (``tcpdump -i any``),
    else the pcapng interface number (0 in a pcap file).
    """

    number: int
    ts_ns: int
    wirelen: int
    seg: Segment | None
    skipped: str = ""
    iface: int = 0
    _pkt: Packet | None = None

    @property
    def pkt(self) -> Packet | None:
        pkt = self._pkt
        if pkt is None and self.seg is not None:
            pkt = self._pkt = segment_packet(self.seg)
        return pkt


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


def _special(
    linktype: int, data: bytes | memoryview, start: int, caplen: int, nflog_group: int | None
) -> tuple[Segment | None, str, int]:
    """The link types whose frames also tell the interface apart: Linux cooked v2 (its
    ifindex) and NFLOG (its group; ``nflog_group`` keeps one)."""
    if linktype == LINKTYPE_LINUX_SLL2:
        seg, skipped = decode_frame(linktype, data, start, start + caplen)
        return seg, skipped, _sll2_ifindex(data, start, caplen)
    seg, skipped, group = decode_nflog(data, start, start + caplen)
    if nflog_group is not None and group != nflog_group:
        return None, f"NFLOG group {group}", group
    return seg, skipped, group


class _Source:
    """A file read in chunks: ``buf`` holds the bytes from file offset ``base`` on."""

    def __init__(self, f: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self.f = f
        self.buf = b""
        self.base = 0
        self.progress = progress

    def need(self, pos: int, n: int) -> int:
        """Make ``buf[pos:pos + n]`` available; the (possibly moved) ``pos``, or -1 at end of
        file (``buf`` then holds what was left from ``pos`` on)."""
        if len(self.buf) - pos >= n:
            return pos
        self.base += pos
        self.buf = self.buf[pos:]
        while len(self.buf) < n:
            more = self.f.read(max(CHUNK, n - len(self.buf)))
            if not more:
                return -1
            self.buf += more
            if self.progress is not None:
                self.progress(self.base + len(self.buf))
        return 0


Warn = Callable[[str], None]


def read_frames(
    path: str | os.PathLike[str],
    progress: Callable[[int], None] | None = None,
    warn: Warn | None = None,
    nflog_group: int | None = None,
) -> Iterator[Frame]:
    """Every record of the pcap or pcapng file at ``path``, in file order, streamed;
    ``progress`` is called with the number of bytes read after each chunk; ``warn`` with the
    one line saying where a capture cut off mid-frame ends (without it that is an error);
    ``nflog_group``: of an NFLOG capture, only this group's packets."""
    name = os.fspath(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as e:
        raise CaptureError(f"{name}: {e.strerror}") from None
    try:
        head = f.read(4)
        f.seek(0)
        if len(head) < 4:
            raise CaptureError(f"{name}: file header: truncated ({len(head)} bytes), not a capture")
        magic_le = int.from_bytes(head, "little")
        if magic_le == BT_SHB:
            yield from _pcapng(name, _Source(f, progress), warn, nflog_group)
        elif magic_le in (TCPDUMP_MAGIC, NSEC_TCPDUMP_MAGIC) or int.from_bytes(head, "big") in (
            TCPDUMP_MAGIC,
            NSEC_TCPDUMP_MAGIC,
        ):
            yield from _pcap(name, _Source(f, progress), warn, nflog_group)
        else:
            raise CaptureError(
                f"{name}: file header: bad magic number 0x{head.hex()}, not a pcap or pcapng file"
            )
    finally:
        f.close()


def _check_linktype(name: str, where: str, linktype: int) -> None:
    if linktype not in KNOWN_LINKTYPES:
        raise CaptureError(
            f"{name}: {where}: unknown link type {linktype} "
            "(nflab reads Ethernet, 802.1Q, Linux cooked v1/v2, raw IP, NFLOG, PPP)"
        )


def _cut(name: str, warn: Warn | None, message: str, complete: int) -> None:
    """A capture cut off mid-frame: an error without ``warn``, else a warning (tshark's)."""
    if warn is None:
        raise CaptureError(f"{name}: {message}")
    warn(
        f"{name}: {message}: the capture appears to have been cut short in the middle of a frame; "
        f"the {complete} complete frame(s) before it are analysed"
    )


def _pcap(name: str, src: _Source, warn: Warn | None, nflog_group: int | None) -> Iterator[Frame]:
    if src.need(0, 24) < 0:
        raise CaptureError(f"{name}: file header: truncated ({len(src.buf)} of 24 bytes)")
    order = "<" if int.from_bytes(src.buf[:4], "little") in (TCPDUMP_MAGIC, NSEC_TCPDUMP_MAGIC) else ">"
    magic, major, _minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack_from(order + "IHHiIII", src.buf)
    if major != 2:
        raise CaptureError(f"{name}: file header: pcap version {major}, expected 2")
    linktype &= 0x03FFFFFF  # LT_LINKTYPE(): the upper bits carry FCS information
    _check_linktype(name, "file header", linktype)
    nsec = magic == NSEC_TCPDUMP_MAGIC
    special = linktype in (LINKTYPE_LINUX_SLL2, LINKTYPE_NFLOG)
    rec = struct.Struct(order + "IIII")
    pos, number = 24, 0
    while True:
        pos = src.need(pos, 16)
        if pos < 0:
            if src.buf:
                _cut(
                    name,
                    warn,
                    f"frame {number + 1}: truncated record header "
                    f"({len(src.buf)} of 16 bytes at offset {src.base})",
                    number,
                )
            return
        secs, frac, caplen, wirelen = rec.unpack_from(src.buf, pos)
        number += 1
        if caplen > MAXIMUM_SNAPLEN:
            raise CaptureError(
                f"{name}: frame {number}: record claims {caplen} bytes, more than the "
                f"{MAXIMUM_SNAPLEN} a capture may hold (offset {src.base + pos})"
            )
        pos = src.need(pos, 16 + caplen)
        if pos < 0:
            _cut(
                name,
                warn,
                f"frame {number}: truncated record ({len(src.buf) - 16} of {caplen} bytes)",
                number - 1,
            )
            return
        start = pos + 16
        ts_ns = secs * 1_000_000_000 + (frac if nsec else frac * 1000)
        if special:
            seg, skipped, iface = _special(linktype, src.buf, start, caplen, nflog_group)
            yield Frame(number, ts_ns, wirelen, seg, skipped, iface)
        else:
            seg, skipped = decode_frame(linktype, src.buf, start, start + caplen)
            yield Frame(number, ts_ns, wirelen, seg, skipped)
        pos = start + caplen


def _tsresol(options: bytes, order: str) -> int:
    """Units per second from an IDB's options (``if_tsresol``; default microseconds), checked
    as ``process_idb_options()`` in sf-pcapng.c checks them; ValueError names the fault."""
    i, per_sec, seen = 0, 1_000_000, False
    while i < len(options):
        if i + 4 > len(options):
            raise ValueError("option header cut short")
        code, length = struct.unpack_from(order + "HH", options, i)
        padded = (length + 3) & ~3
        if i + 4 + padded > len(options):
            raise ValueError(f"option {code} cut short")
        if code == OPT_ENDOFOPT:
            if length:
                raise ValueError(f"opt_endofopt option with length {length} != 0")
            break
        if code == IF_TSRESOL:
            if length != 1:
                raise ValueError(f"if_tsresol option with length {length} != 1")
            if seen:
                raise ValueError("more than one if_tsresol option")
            seen = True
            v = options[i + 4]
            if (v & 0x7F) > (63 if v & 0x80 else 19):  # the unit must fit 64 bits
                raise ValueError(f"if_tsresol {v:#04x}: a time stamp resolution that is too high")
            per_sec = int(2 ** (v & 0x7F) if v & 0x80 else 10 ** (v & 0x7F))
        i += 4 + padded
    return per_sec


_MIN_BLOCK = {BT_SHB: SHB_MIN, BT_IDB: IDB_MIN, BT_EPB: EPB_MIN, BT_PB: PB_MIN, BT_SPB: SPB_MIN}
_BLOCK_NAMES = {
    BT_SHB: "Section Header Block",
    BT_IDB: "Interface Description Block",
    BT_EPB: "Enhanced Packet Block",
    BT_PB: "Packet Block",
    BT_SPB: "Simple Packet Block",
}


def _pcapng(name: str, src: _Source, warn: Warn | None, nflog_group: int | None) -> Iterator[Frame]:
    """The blocks of a pcapng file, refused where ``read_block()`` and ``pcap_ng_check_header()``
    / ``pcap_ng_next_packet()`` of libpcap's sf-pcapng.c refuse them."""
    order = "<"
    interfaces: list[tuple[int, int]] = []  # (linktype, units per second)
    pos, number, described = 0, 0, False
    while True:
        pos = src.need(pos, 12)
        if pos < 0:
            if src.buf:
                _cut(name, warn, f"after frame {number}: truncated block header at offset {src.base}", number)
            elif not described:
                raise CaptureError(f"{name}: the capture file has no Interface Description Blocks")
            return
        buf = src.buf
        (btype,) = struct.unpack_from("<I", buf, pos)
        if btype == BT_SHB:
            (bom,) = struct.unpack_from("<I", buf, pos + 8)
            if bom == BYTE_ORDER_MAGIC:
                order = "<"
            elif bom == int.from_bytes(BYTE_ORDER_MAGIC.to_bytes(4, "little"), "big"):
                order = ">"
            else:
                raise CaptureError(f"{name}: section header at offset {src.base + pos}: bad byte-order magic")
            interfaces = []
        else:
            (btype,) = struct.unpack_from(order + "I", buf, pos)
        (blen,) = struct.unpack_from(order + "I", buf, pos + 4)
        where = f"frame {number + 1}" if btype in (BT_EPB, BT_SPB, BT_PB) else f"after frame {number}"
        if blen < 12 or blen % 4 or blen > MAX_BLOCKSIZE:
            raise CaptureError(
                f"{name}: {where}: block claims {blen} bytes (offset {src.base + pos}),"
                " not a valid pcapng block"
            )
        if blen < _MIN_BLOCK.get(btype, 12):
            raise CaptureError(
                f"{name}: {where}: {_BLOCK_NAMES[btype]} has a length of {blen} < {_MIN_BLOCK[btype]}"
                f" (offset {src.base + pos})"
            )
        pos = src.need(pos, blen)
        if pos < 0:
            _cut(name, warn, f"{where}: truncated block ({len(src.buf)} of {blen} bytes)", number)
            return
        buf = src.buf
        (trailer,) = struct.unpack_from(order + "I", buf, pos + blen - 4)
        if trailer != blen:
            raise CaptureError(
                f"{name}: {where}: block total length in header ({blen}) and trailer ({trailer}) don't match"
                f" (offset {src.base + pos})"
            )
        body = pos + 8
        if btype == BT_SHB:
            major, minor = struct.unpack_from(order + "HH", buf, body + 4)
            if (major, minor) not in PCAP_NG_VERSIONS:
                raise CaptureError(
                    f"{name}: section header at offset {src.base + pos}: "
                    f"unsupported pcapng version {major}.{minor}"
                )
        elif btype == BT_IDB:
            linktype, _snap = struct.unpack_from(order + "HxxI", buf, body)
            _check_linktype(name, f"interface {len(interfaces)}", linktype)
            try:
                per_sec = _tsresol(bytes(buf[body + 8 : pos + blen - 4]), order)
            except ValueError as e:
                raise CaptureError(
                    f"{name}: interface {len(interfaces)}: Interface Description Block has {e}"
                ) from None
            interfaces.append((linktype, per_sec))
            described = True
        elif btype in (BT_EPB, BT_PB, BT_SPB):
            number += 1
            if btype == BT_SPB:
                iface, ts, (wirelen,) = 0, 0, struct.unpack_from(order + "I", buf, body)
                caplen, data = min(wirelen, blen - 16), body + 4
            else:
                iface, hi, lo, caplen, wirelen = struct.unpack_from(order + "IIIII", buf, body)
                if btype == BT_PB:
                    iface &= 0xFFFF
                ts, data = (hi << 32) | lo, body + 20
            if iface >= len(interfaces):
                raise CaptureError(f"{name}: frame {number}: interface {iface} was never described")
            if data + caplen > pos + blen - 4:
                raise CaptureError(
                    f"{name}: frame {number}: packet claims {caplen} bytes, more than its {blen}-byte block"
                )
            linktype, per_sec = interfaces[iface]
            ts_ns = ts * 1_000_000_000 // per_sec if per_sec != 1_000_000 else ts * 1000
            if linktype in (LINKTYPE_LINUX_SLL2, LINKTYPE_NFLOG):
                seg, skipped, iface = _special(linktype, buf, data, caplen, nflog_group)
            else:
                seg, skipped = decode_frame(linktype, buf, data, data + caplen)
            yield Frame(number, ts_ns, wirelen, seg, skipped, iface)
        pos += blen
