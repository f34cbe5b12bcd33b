"""IPv4 packets as conntrack sees them: TCP segments, UDP datagrams and ICMP messages
(include/linux/tcp.h, include/net/tcp.h, include/uapi/linux/udp.h, include/uapi/linux/icmp.h).

A :class:`Packet` is frozen: NAT and every other rewrite produce a new packet with
:func:`dataclasses.replace`, so a trace can keep the packet before and after. Flags are
raw bits, so combinations the kernel rejects (SYN+FIN, no flags at all) can be built and
judged later. Sequence numbers are plain ints in ``[0, 2**32)``; compare them only with
:func:`before` / :func:`after`, which mirror the kernel's 32-bit wraparound helpers.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Final

SEQ_MOD: Final = 1 << 32
SEQ_MASK: Final = SEQ_MOD - 1
IP_HEADER_LEN = 20
TCP_HEADER_LEN = 20
UDP_HEADER_LEN = 8  # sizeof(struct udphdr)
ICMP_HEADER_LEN = 8  # sizeof(struct icmphdr)


class IpProto(IntEnum):
    """The transport protocols nflab tracks (``IPPROTO_*`` in include/uapi/linux/in.h)."""

    ICMP = 1
    TCP = 6
    UDP = 17


# Two members under their kernel names, for the per-packet paths to test (``proto is IPPROTO_TCP``;
# ICMP is tested against the number, sim.include.nf_conntrack.IPPROTO_ICMP):
# on Python 3.11 reading a member as a class attribute goes through EnumType.__getattr__'s
# slow hook (about 900 machine instructions; a module global costs a few).
IPPROTO_TCP: Final = IpProto.TCP
IPPROTO_UDP: Final = IpProto.UDP


class IcmpType(IntEnum):
    """``ICMP_*`` message types (include/uapi/linux/icmp.h) that conntrack tells apart."""

    ECHOREPLY = 0
    DEST_UNREACH = 3
    SOURCE_QUENCH = 4
    REDIRECT = 5
    ECHO = 8
    TIME_EXCEEDED = 11
    PARAMETERPROB = 12
    TIMESTAMP = 13
    TIMESTAMPREPLY = 14
    INFO_REQUEST = 15
    INFO_REPLY = 16
    ADDRESS = 17
    ADDRESSREPLY = 18


# icmp_is_err() (include/linux/icmp.h): the error messages, which quote the offending packet.
ICMP_ERROR_TYPES = frozenset(
    {
        IcmpType.DEST_UNREACH,
        IcmpType.SOURCE_QUENCH,
        IcmpType.REDIRECT,
        IcmpType.TIME_EXCEEDED,
        IcmpType.PARAMETERPROB,
    }
)
# The query/answer pairs whose header carries an identifier and a sequence (un.echo): the
# kernel's invmap[] in nf_conntrack_proto_icmp.c.
ICMP_INVMAP = {
    IcmpType.ECHO: IcmpType.ECHOREPLY,
    IcmpType.ECHOREPLY: IcmpType.ECHO,
    IcmpType.TIMESTAMP: IcmpType.TIMESTAMPREPLY,
    IcmpType.TIMESTAMPREPLY: IcmpType.TIMESTAMP,
    IcmpType.INFO_REQUEST: IcmpType.INFO_REPLY,
    IcmpType.INFO_REPLY: IcmpType.INFO_REQUEST,
    IcmpType.ADDRESS: IcmpType.ADDRESSREPLY,
    IcmpType.ADDRESSREPLY: IcmpType.ADDRESS,
}


class TcpFlag(IntFlag):
    """TCP header flag bits (``TCPHDR_*`` in include/net/tcp.h)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


# Plain-int copies (the kernel's TCPHDR_* names) for hot paths: ``int & IntFlag`` goes
# through the enum machinery and is several times slower than ``int & int``.
TCPHDR_FIN: Final = int(TcpFlag.FIN)
TCPHDR_SYN: Final = int(TcpFlag.SYN)
TCPHDR_RST: Final = int(TcpFlag.RST)
TCPHDR_PSH: Final = int(TcpFlag.PSH)
TCPHDR_ACK: Final = int(TcpFlag.ACK)
TCPHDR_URG: Final = int(TcpFlag.URG)
TCPHDR_ECE: Final = int(TcpFlag.ECE)
TCPHDR_CWR: Final = int(TcpFlag.CWR)

TCP_MAX_WSCALE: Final = 14  # include/net/tcp.h; RFC 7323 §2.3

# Each flag's letter in a case file and in tcpdump's ``Flags [...]``, in bit order: the order of
# tcp_flag_values[] (print-tcp.c), in which tcpdump prints them. Case files write SYN first ("SF").
#                  flag         case  tcpdump
TCP_FLAG_LETTERS = (
    (TCPHDR_FIN, "F", "F"),
    (TCPHDR_SYN, "S", "S"),
    (TCPHDR_RST, "R", "R"),
    (TCPHDR_PSH, "P", "P"),
    (TCPHDR_ACK, "A", "."),
    (TCPHDR_URG, "U", "U"),
    (TCPHDR_ECE, "E", "E"),
    (TCPHDR_CWR, "W", "W"),
)
_CASE_LETTERS = (
    (TCPHDR_SYN, "S"),
    *((bit, case) for bit, case, _ in TCP_FLAG_LETTERS if bit != TCPHDR_SYN),
)
# parse_flags() takes either spelling (tcpdump's "." for ACK too), and C for CWR: the replay
# contract's letters are FSRPAUEC
_LETTER_TO_FLAG = {letter: bit for bit, *letters in TCP_FLAG_LETTERS for letter in letters}
_LETTER_TO_FLAG["C"] = TCPHDR_CWR


def parse_flags(text: str) -> int:
    """``"SA"`` -> SYN|ACK. Raises ValueError naming an unknown letter."""
    bits = 0
    for letter in text.upper():
        try:
            bits |= _LETTER_TO_FLAG[letter]
        except KeyError:
            raise ValueError(f"unknown TCP flag letter {letter!r} (use S F R P A U E C or W)") from None
    return bits


def format_flags(flags: int) -> str:
    """SYN|ACK -> ``"SA"``; the inverse of :func:`parse_flags` (empty for no flags)."""
    return "".join(letter for bit, letter in _CASE_LETTERS if flags & bit)


@functools.lru_cache(maxsize=65536)
def ip_to_int(addr: str) -> int:
    """Dotted quad -> host-order int (cached: packets carry addresses as strings)."""
    return int(ipaddress.IPv4Address(addr))


def int_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


@functools.lru_cache(maxsize=65536)
def in_subnet(addr: str, net: str, prefix: int) -> bool:
    """Whether ``addr`` lies in ``net/prefix`` (cached: the fib lookup asks per packet)."""
    return ipaddress.IPv4Address(addr) in ipaddress.IPv4Network((net, prefix), strict=False)


def before(seq1: int, seq2: int) -> bool:
    """``before()`` from include/net/tcp.h: ``(s32)(seq1 - seq2) < 0``."""
    return ((seq1 - seq2) & SEQ_MASK) >= 0x80000000


def after(seq1: int, seq2: int) -> bool:
    """``after()`` from include/net/tcp.h: ``before(seq2, seq1)``."""
    return ((seq2 - seq1) & SEQ_MASK) >= 0x80000000


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """The TCP options conntrack and the endpoints read (RFC 793, 7323, 2018).

    ``wscale`` is the raw shift count as sent (the kernel caps it at 14 when it reads it);
    ``sack`` holds (left, right) edges; ``ts`` is (TSval, TSecr).
    """

    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    sack: tuple[tuple[int, int], ...] = ()
    ts: tuple[int, int] | None = None

    def wire_length(self) -> int:
        """Option bytes on the wire, padded to 4 as Linux lays them out."""
        n = 0
        if self.mss is not None:
            n += 4
        if self.sack_perm and self.ts is not None:
            n += 12  # SACK_PERM + TIMESTAMP share two words (tcp_options_write)
        else:
            if self.sack_perm:
                n += 4  # NOP NOP SACK_PERM(2)
            if self.ts is not None:
                n += 12  # NOP NOP TIMESTAMP(10)
        if self.wscale is not None:
            n += 4  # NOP WSCALE(3)
        if self.sack:
            n += 4 + 8 * len(self.sack)  # NOP NOP SACK(2 + 8n)
        return n


NO_OPTIONS = TcpOptions()


@dataclass(frozen=True, slots=True)
class Packet:
    """One IPv4 packet; TCP unless ``proto`` says otherwise. Addresses are dotted-quad strings.

    UDP uses ``sport``, ``dport`` and ``payload_len`` only. ICMP keeps its header in the fields
    conntrack's tuple takes it into (``nf_conntrack_tuple``'s union): ``sport`` is the
    identifier (``src.u.icmp.id``, 0 for an error), ``dport`` the type and code as
    ``dst.u.all`` holds them (``type << 8 | code``), ``seq`` the echo sequence number; an error
    carries the offending packet's headers as ``inner``.
    """

    src: str
    dst: str
    sport: int
    dport: int
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    payload_len: int = 0
    options: TcpOptions = field(default=NO_OPTIONS)
    ttl: int = 64
    ip_id: int = 0
    # True when a test corrupted the TCP/UDP/ICMP checksum on purpose ("bad checksum").
    bad_checksum: bool = False
    proto: IpProto = IpProto.TCP
    inner: Packet | None = None  # an ICMP error's quoted packet (IP header + 8 bytes)

    @property
    def icmp_type(self) -> int:
        return self.dport >> 8

    @property
    def icmp_code(self) -> int:
        return self.dport & 0xFF

    @property
    def syn(self) -> bool:
        return bool(self.flags & TCPHDR_SYN)

    @property
    def ack_flag(self) -> bool:
        return bool(self.flags & TCPHDR_ACK)

    @property
    def fin(self) -> bool:
        return bool(self.flags & TCPHDR_FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & TCPHDR_RST)

    @property
    def tcp_header_len(self) -> int:
        """``doff * 4``."""
        return TCP_HEADER_LEN + self.options.wire_length()

    @property
    def l4_header_len(self) -> int:
        """The transport header's bytes (an ICMP error's quoted packet counts as header)."""
        if self.proto is IpProto.TCP:
            return self.tcp_header_len
        if self.proto is IpProto.UDP:
            return UDP_HEADER_LEN
        quoted = IP_HEADER_LEN + 8 if self.inner is not None else 0  # RFC 792: IP header + 64 bits
        return ICMP_HEADER_LEN + quoted

    @property
    def ip_len(self) -> int:
        """The IPv4 total length (what the LOG target prints as LEN=)."""
        return IP_HEADER_LEN + self.l4_header_len + self.payload_len

    @property
    def end_seq(self) -> int:
        """``segment_seq_plus_len()``: seq + payload + SYN + FIN, mod 2**32."""
        flags = self.flags
        return (self.seq + self.payload_len + (flags >> 1 & 1) + (flags & TCPHDR_FIN)) & SEQ_MASK

    def rewritten(self, src: str, sport: int, dst: str, dport: int, ttl: int) -> Packet:
        """The same segment with new addresses, ports and TTL (NAT, forwarding). Positional
        construction: several times faster than ``dataclasses.replace`` on this path."""
        return Packet(
            src,
            dst,
            sport,
            dport,
            self.seq,
            self.ack,
            self.flags,
            self.window,
            self.payload_len,
            self.options,
            ttl,
            self.ip_id,
            self.bad_checksum,
            self.proto,
            self.inner,
        )

    def describe(self) -> str:
        """A compact one-line form for errors and traces."""
        if self.proto is IpProto.UDP:
            return f"{self.src}:{self.sport} > {self.dst}:{self.dport} UDP len {self.payload_len}"
        if self.proto is IpProto.ICMP:
            quoted = f" for {self.inner.describe()}" if self.inner is not None else ""
            return (
                f"{self.src} > {self.dst} ICMP type {self.icmp_type} code {self.icmp_code} "
                f"id {self.sport} seq {self.seq} len {self.payload_len}{quoted}"
            )
        return (
            f"{self.src}:{self.sport} > {self.dst}:{self.dport} [{format_flags(self.flags) or 'none'}] "
            f"seq {self.seq} ack {self.ack} win {self.window} len {self.payload_len}"
        )


def rst_reply(pkt: Packet) -> Packet:
    """The RST answering ``pkt`` (RFC 793 §3.4, "Reset Generation"), as ``tcp_v4_send_reset()``
    and ``nf_reject_ip_tcphdr_put()`` build it: if the segment had ACK set the RST takes its
    sequence number from that ACK; otherwise seq 0, RST|ACK, and ACK = seq + SYN + FIN +
    payload. Addresses and ports reversed, window 0, no options, TTL 64, IP ID 0. Whether to
    answer at all (never a RST to a RST, ...) is the caller's rule."""
    if pkt.flags & TCPHDR_ACK:
        seq, ack, flags = pkt.ack, 0, TCPHDR_RST
    else:
        seq, ack, flags = 0, pkt.end_seq, TCPHDR_RST | TCPHDR_ACK
    return Packet(pkt.dst, pkt.src, pkt.dport, pkt.sport, seq, ack, flags)


ICMP_QUOTE_ROOM = 576 - IP_HEADER_LEN - ICMP_HEADER_LEN  # icmp_send(): "room = 576", less headers


def icmp_error_reply(pkt: Packet, icmp_type: int, code: int, saddr: str) -> Packet:
    """The ICMP error ``icmp_send()`` builds about ``pkt``, from ``saddr``: it quotes the
    packet's IP header and as many of its bytes as fit in 576 (``inner`` stands for the IP
    header and the first 8 bytes; ``payload_len`` is the rest of the quote)."""
    quoted = min(pkt.ip_len, ICMP_QUOTE_ROOM)
    return icmp_packet(saddr, pkt.src, icmp_type, code, payload_len=quoted - IP_HEADER_LEN - 8, inner=pkt)


def udp_packet(src: str, sport: int, dst: str, dport: int, payload_len: int = 0) -> Packet:
    """A UDP datagram."""
    return Packet(src, dst, sport, dport, payload_len=payload_len, proto=IpProto.UDP)


def icmp_packet(
    src: str,
    dst: str,
    icmp_type: int,
    code: int = 0,
    ident: int = 0,
    seq: int = 0,
    payload_len: int = 0,
    inner: Packet | None = None,
) -> Packet:
    """An ICMP message (see :class:`Packet` for where its header fields live)."""
    return Packet(
        src, dst, ident, icmp_type << 8 | code, seq, payload_len=payload_len, proto=IpProto.ICMP, inner=inner
    )
