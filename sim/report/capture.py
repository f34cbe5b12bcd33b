"""Capture points as users read them: tcpdump one-liners (print-tcp.c) and libpcap files (sf-pcap.c).

:func:`tcpdump_line` prints a :class:`sim.packet.Packet` the way ``tcpdump -n`` 4.99 does:
``ts_print()`` (util-print.c) for the time of day, ``ip_print()``'s ``"IP "`` and
``tcp_print()`` (print-tcp.c) for the rest, including its relative sequence numbers, which
are kept in a table the caller passes in (tcpdump's ``tcp_seq_hash4``) so one table serves a
whole capture. ``absolute=True`` is tcpdump's ``-S``.

:class:`PcapWriter` / :func:`write_pcap` write classic libpcap files (``pcap_dump_open``,
``pcap_dump``, ``pcap_dump_close``) with Ethernet framing from :func:`sim.wire.emit_eth`;
:mod:`sim.pcap.reader` reads them back. Virtual time is seconds since ``base``, itself
seconds since the Unix epoch; lines print the time of day in UTC, which is what
``TZ=UTC tcpdump -n -r FILE`` prints for the same file.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from types import TracebackType
from typing import BinaryIO

from sim.packet import (
    SEQ_MASK,
    TCP_FLAG_LETTERS,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_RST,
    TCPHDR_SYN,
    TCPHDR_URG,
    IpProto,
    Packet,
)
from sim.wire import (
    TCPOPT_MSS,
    TCPOPT_NOP,
    TCPOPT_SACK_PERM,
    TCPOPT_TIMESTAMP,
    TCPOPT_WINDOW,
    emit,
    emit_eth,
    emit_options,
    ip_to_bytes,
)

# ---------------------------------------------------------------- tcpdump text

# tcp_print()'s payload dispatch after "length N", in its order (the first entry naming the
# source or destination port wins), with what each printer prints for the all-zero payload
# a Packet stands for (tcpdump 4.99, no -v). Printers whose text depends on the payload
# length (pptp 1723, OpenFlow 6633/6653, DNS 53, LDP 646, NFS 2049) are listed so they still
# take precedence, but their text is not modelled. The SMB printers (139, 445) are left out,
# as in tcpdump's default build (configure --enable-smb, default no).
PAYLOAD_PRINTERS: tuple[tuple[frozenset[int], str], ...] = (
    (frozenset({23}), ""),  # telnet_print: no IAC, nothing
    (frozenset({25}), ": SMTP"),  # smtp_print -> txtproto_print
    (frozenset({43}), ": WHOIS"),  # whois_print -> txtproto_print
    (frozenset({179}), ": BGP"),  # bgp_print: no marker, nothing more
    (frozenset({1723}), ""),  # pptp_print: not modelled
    (frozenset({6379}), ": RESP [|resp]"),  # resp_print
    (frozenset({22}), ""),  # ssh_print: no "SSH-" banner, nothing
    (frozenset({10288}), " BEEP (payload or undecoded)"),  # beep_print
    (frozenset({6633, 6653}), ""),  # openflow_print: not modelled
    (frozenset({21}), ": FTP"),  # ftp_print -> txtproto_print
    (frozenset({80, 8080}), ": HTTP"),  # http_print: no request or status line
    (frozenset({554, 8554}), ": RTSP"),  # rtsp_print
    (frozenset({53}), ""),  # domain_print: not modelled
    (frozenset({639}), ": msdp [|msdp]"),  # msdp_print
    (frozenset({323}), ", RPKI-RTR"),  # rpki_rtr_print
    (frozenset({646}), ""),  # ldp_print: not modelled
    (frozenset({2049}), ""),  # NFS over Sun RPC: not modelled
)

USEC_PER_SEC = 1_000_000
SECS_PER_DAY = 86_400

# struct tha in print-tcp.c: (src, dst, sport << 16 | dport) in tcp_print()'s collating order.
FlowKey = tuple[str, str, int]
# tcp_seq_hash4: a flow's (th->seq, th->ack), the bases relative numbers are taken from.
SeqTable = dict[FlowKey, tuple[int, int]]


def _usec(t: float, base: float) -> int:
    """Virtual time ``t`` (seconds since ``base``) as whole microseconds since the Unix epoch."""
    usec = round(base * USEC_PER_SEC) + round(t * USEC_PER_SEC)
    if usec < 0:
        raise ValueError(f"time {t} s after base {base} s is before the Unix epoch")
    return usec


def ts_print(t: float, base: float = 0.0) -> str:
    """``ts_print()``'s default format, ``HH:MM:SS.ffffff`` (``ts_date_hmsfrac_print``), in UTC."""
    secs, frac = divmod(_usec(t, base), USEC_PER_SEC)
    secs %= SECS_PER_DAY
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{frac:06d}"


def _format_options(raw: bytes, rev: bool, thseq: int, thack: int) -> str:
    """The ``options [...]`` list of ``tcp_print()``, for the option kinds ``emit_options`` writes."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == TCPOPT_NOP:
            out.append("nop")
            i += 1
            continue
        size = raw[i + 1]
        body = raw[i + 2 : i + size]
        if kind == TCPOPT_MSS:
            out.append(f"mss {int.from_bytes(body, 'big')}")
        elif kind == TCPOPT_WINDOW:
            out.append(f"wscale {body[0]}")
        elif kind == TCPOPT_SACK_PERM:
            out.append("sackOK")
        elif kind == TCPOPT_TIMESTAMP:
            tsval, tsecr = struct.unpack("!II", body)
            out.append(f"TS val {tsval} ecr {tsecr}")
        else:  # TCPOPT_SACK, the last kind emit_options writes; edges relative like seq/ack
            edges = struct.unpack(f"!{len(body) // 4}I", body)
            off = thseq if rev else thack
            blocks = "".join(
                f"{{{(edges[j] - off) & SEQ_MASK}:{(edges[j + 1] - off) & SEQ_MASK}}}"
                for j in range(0, len(edges), 2)
            )
            out.append(f"sack {len(edges) // 2} {blocks}")
        i += size
    return ",".join(out)


def _flow_key(pkt: Packet) -> tuple[FlowKey, bool]:
    """``tcp_print()``'s ``tha`` and ``rev``: one key for both directions of a connection."""
    rev = pkt.sport > pkt.dport or (pkt.sport == pkt.dport and ip_to_bytes(pkt.src) > ip_to_bytes(pkt.dst))
    if rev:
        return (pkt.dst, pkt.src, pkt.dport << 16 | pkt.sport), True
    return (pkt.src, pkt.dst, pkt.sport << 16 | pkt.dport), False


def tcpdump_line(
    pkt: Packet,
    t: float,
    relative_to: SeqTable | None = None,
    *,
    absolute: bool = False,
    base: float = 0.0,
) -> str:
    """The line ``tcpdump -n`` prints for ``pkt`` captured at virtual time ``t``.

    Mirrors ``tcp_print()`` (print-tcp.c, tcpdump 4.99): flag letters from
    ``tcp_flag_values``; ``seq`` only for segments with data, SYN, FIN or RST, as a range
    ``seq:seq+len`` when there is data; ``ack`` when ACK is set; ``urg`` when URG is set
    (a Packet's urgent pointer is always 0); options; ``length`` of the payload.

    Relative numbers: for a segment with ACK set and ``absolute`` false, a connection not
    yet in ``relative_to`` (or any SYN) is recorded there and printed absolute, and later
    segments print seq/ack and SACK edges relative to it, exactly as tcpdump's
    ``tcp_seq_hash4`` does. Pass the same dict for every line of one capture; ``None``
    means a fresh table (the line tcpdump prints when this is the first packet it sees).
    ``absolute=True`` is ``-S``. A segment with data to or from a port tcpdump decodes gets
    that printer's text for an all-zero payload (see :data:`PAYLOAD_PRINTERS`).
    """
    if pkt.proto is IpProto.UDP:
        return f"{ts_print(t, base)} IP {pkt.src}.{pkt.sport} > {pkt.dst}.{pkt.dport}: {_udp_text(pkt)}"
    if pkt.proto is IpProto.ICMP:
        return (
            f"{ts_print(t, base)} IP {pkt.src} > {pkt.dst}: ICMP {_icmp_text(pkt)}, length {pkt.ip_len - 20}"
        )
    flags = pkt.flags
    seq, ack = pkt.seq, pkt.ack
    rev = False
    thseq = thack = 0
    if not absolute and flags & TCPHDR_ACK:
        table: SeqTable = {} if relative_to is None else relative_to
        key, rev = _flow_key(pkt)
        known = table.get(key)
        if known is None or flags & TCPHDR_SYN:
            # th->seq/th->ack: the ISNs of the lower-ordered and the other side
            known = ((ack - 1) & SEQ_MASK, seq) if rev else (seq, (ack - 1) & SEQ_MASK)
            table[key] = known
        else:
            base_seq, base_ack = known
            if rev:
                seq, ack = (seq - base_ack) & SEQ_MASK, (ack - base_seq) & SEQ_MASK
            else:
                seq, ack = (seq - base_seq) & SEQ_MASK, (ack - base_ack) & SEQ_MASK
        thseq, thack = known

    length = pkt.payload_len
    parts = [
        f"{ts_print(t, base)} IP {pkt.src}.{pkt.sport} > {pkt.dst}.{pkt.dport}: Flags ["
        # bittok2str_nosep() over tcp_flag_values[]: every set bit's letter, or "none"
        + ("".join(letter for bit, _, letter in TCP_FLAG_LETTERS if flags & bit) or "none")
        + "]"
    ]
    if length > 0 or flags & (TCPHDR_SYN | TCPHDR_FIN | TCPHDR_RST):
        parts.append(f"seq {seq}:{(seq + length) & SEQ_MASK}" if length > 0 else f"seq {seq}")
    if flags & TCPHDR_ACK:
        parts.append(f"ack {ack}")
    parts.append(f"win {pkt.window}")
    if flags & TCPHDR_URG:
        parts.append("urg 0")
    raw_opts = emit_options(pkt.options)
    if raw_opts:
        parts.append(f"options [{_format_options(raw_opts, rev, thseq, thack)}]")
    parts.append(f"length {length}")
    line = ", ".join(parts)
    if length > 0:
        for ports, text in PAYLOAD_PRINTERS:
            if pkt.sport in ports or pkt.dport in ports:
                return line + text
    return line


def _udp_text(pkt: Packet) -> str:
    """``udp_print()`` (print-udp.c) for an all-zero payload: the DNS printer on ports 53 and
    5353 (a header of zeros: id 0, no questions), NTP on 123, else the generic line. Other
    ports tcpdump decodes (bootp, snmp, syslog, sip, vxlan, isakmp, ...) print their own
    decoder's text, which is not modelled."""
    n = pkt.payload_len
    if 53 in (pkt.sport, pkt.dport) or 5353 in (pkt.sport, pkt.dport):
        return f"domain [length {n} < 12] (invalid)" if n < 12 else f"0 [0q] ({n})"
    if 123 in (pkt.sport, pkt.dport) and n > 0:
        return f"NTPv0, unspecified, length {n}"
    return f"UDP, length {n}"


# print-icmp.c: the destination-unreachable texts by code ("%s" the quoted packet's
# destination), as tcpdump 4.99 prints them
_UNREACH = {
    0: "net {} unreachable",
    1: "host {} unreachable",
    4: "{} unreachable - need to frag",
    5: "{} unreachable - source route failed",
    6: "net {} unreachable - unknown",
    7: "host {} unreachable - unknown",
    8: "{} unreachable - source host isolated",
    9: "net {} unreachable - admin prohibited",
    10: "host {} unreachable - admin prohibited",
    11: "net {} unreachable - tos prohibited",
    12: "host {} unreachable - tos prohibited",
    13: "host {} unreachable - admin prohibited filter",
    14: "host {} unreachable - host precedence violation",
    15: "host {} unreachable - precedence cutoff",
}
_SIMPLE = {4: "source quench", 10: "router solicitation", 15: "information request", 16: "information reply"}
_SIMPLE |= {17: "address mask request"}


def _icmp_text(pkt: Packet) -> str:
    """``icmp_print()`` (print-icmp.c) for the messages a case can send (zero data, unused
    fields 0: a redirect's gateway 0.0.0.0, a parameter problem's pointer 0). Not modelled:
    the router advertisement (9), time stamp reply (14) and address mask reply (18), whose
    text tcpdump builds from their data (here ``type-#N``)."""
    kind, code, inner = pkt.icmp_type, pkt.icmp_code, pkt.inner
    if kind in (0, 8):
        return f"echo {'reply' if kind == 0 else 'request'}, id {pkt.sport}, seq {pkt.seq}"
    if kind == 3 and inner is not None:
        if code == 2:
            return f"{inner.dst} protocol {int(inner.proto)} unreachable"
        if code == 3:
            return f"{inner.dst} {inner.proto.name.lower()} port {inner.dport} unreachable"
        return _UNREACH.get(code, "{} unreachable - #" + str(code)).format(inner.dst)
    if kind == 5 and inner is not None and code in (0, 1):
        return f"redirect {inner.dst} to {'net' if code == 0 else 'host'} 0.0.0.0"
    if kind == 11:
        return "time exceeded in-transit" if code == 0 else "ip reassembly time exceeded"
    if kind == 12:
        return "parameter problem - octet 0" if code == 0 else f"parameter problem - code {code}"
    if kind == 13:
        return f"time stamp query id {pkt.sport} seq {pkt.seq}"
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    return f"type-#{kind}"


# ---------------------------------------------------------------- libpcap files

# pcap/pcap.h and pcap-common.c
TCPDUMP_MAGIC = 0xA1B2C3D4
NSEC_TCPDUMP_MAGIC = 0xA1B23C4D
PCAP_VERSION_MAJOR = 2
PCAP_VERSION_MINOR = 4
MAXIMUM_SNAPLEN = 262_144
LINKTYPE_ETHERNET = 1

# struct pcap_file_header and struct pcap_sf_pkthdr (sf-pcap.c), without the byte order
_FILE_HDR = "IHHiIII"
_REC_HDR = "IIII"


Record = tuple[float, Packet, str, str]


class PcapWriter:
    """A classic libpcap savefile being written: ``pcap_dump_open`` / ``pcap_dump`` / ``pcap_dump_close``.

    Little-endian, microsecond timestamps, snaplen 262144, ``LINKTYPE_ETHERNET``, as
    ``tcpdump -w`` writes them on x86. Times are seconds since ``base`` (seconds since the
    Unix epoch).
    """

    def __init__(self, path: str | os.PathLike[str], *, base: float = 0.0) -> None:
        self._base = base
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()/__exit__
        self._file.write(
            struct.pack(
                "<" + _FILE_HDR,
                TCPDUMP_MAGIC,
                PCAP_VERSION_MAJOR,
                PCAP_VERSION_MINOR,
                0,  # thiszone
                0,  # sigfigs
                MAXIMUM_SNAPLEN,
                LINKTYPE_ETHERNET,
            )
        )

    def write(self, t: float, pkt: Packet, src_mac: str, dst_mac: str) -> None:
        """``pcap_dump()``: one record holding ``pkt`` in an Ethernet frame."""
        frame = emit_eth(dst_mac, src_mac, emit(pkt))
        secs, usec = divmod(_usec(t, self._base), USEC_PER_SEC)
        self._file.write(struct.pack("<" + _REC_HDR, secs, usec, len(frame), len(frame)) + frame)

    def close(self) -> None:
        """``pcap_dump_close()``."""
        self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_pcap(path: str | os.PathLike[str], records: Iterable[Record], *, base: float = 0.0) -> None:
    """Write ``(time, packet, src_mac, dst_mac)`` records to a new pcap file at ``path``."""
    with PcapWriter(path, base=base) as writer:
        for t, pkt, src_mac, dst_mac in records:
            writer.write(t, pkt, src_mac, dst_mac)
