"""The LOG target's text: ``nf_log_ip_packet()`` (net/netfilter/nf_log_syslog.c) with the
``struct xt_log_info`` options of xt_LOG.c."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.netfilter.x_tables import RuleAt, XtCode, XtContext
from sim.packet import UDP_HEADER_LEN, IcmpType, IpProto, TcpFlag

if TYPE_CHECKING:
    from sim.packet import Packet
    from sim.skb import Skb


@dataclass(frozen=True, slots=True)
class LogTarget:
    """``struct xt_log_info`` (xt_LOG.c). ``level`` defaults to LOG_WARNING as libxt_LOG.c sets it."""

    prefix: str = ""
    level: int = 4
    tcp_sequence: bool = False  # XT_LOG_TCPSEQ

    def target(self, skb: Skb, ctx: XtContext, at: RuleAt) -> XtCode:
        """``log_tg()``: log the packet and let the chain go on (``XT_CONTINUE``)."""
        ctx.log(self.level, log_line(self, skb, ctx), skb, at)
        return XtCode.CONTINUE


def log_line(target: LogTarget, skb: Skb, ctx: XtContext) -> str:
    """The text ``nf_log_ip_packet()`` (net/netfilter/nf_log_syslog.c) builds for a packet.

    Field order from nf_log_dump_packet_common(), dump_mac_header() (only when there is an
    input device), dump_ipv4_packet() and nf_log_dump_tcp_header() / _udp_header(). The
    kernel's buffer ends with a space after the last field; it is kept. The model's packets
    have TOS 0, no IP options, no DF/MF, no reserved bits and no urgent pointer.
    """
    pkt = skb.pkt
    parts = [f"{target.prefix}IN={skb.indev or ''} OUT={skb.outdev or ''} "]
    if skb.physindev and skb.physindev != skb.indev:
        parts.append(f"PHYSIN={skb.physindev} ")
    if skb.physoutdev and skb.physoutdev != skb.outdev:
        parts.append(f"PHYSOUT={skb.physoutdev} ")
    if skb.indev:
        parts.append(f"MAC={ctx.mac_header(skb)} ")
    parts.extend(_dump_ipv4_packet(pkt, target, quoted=False))
    if skb.mark:
        parts.append(f"MARK=0x{skb.mark:x} ")
    return "".join(parts)


# nf_log_dump_tcp_header() prints the flags from CWR down to FIN
_LOG_FLAG_ORDER = tuple((flag.name or "", int(flag)) for flag in reversed(TcpFlag))


def _dump_ipv4_packet(pkt: Packet, target: LogTarget, quoted: bool) -> list[str]:
    """``dump_ipv4_packet()``: the IP fields, then the transport header; an ICMP error's
    quoted packet in brackets ("Only recurse once"), whose TCP header is cut after 8 bytes."""
    parts = [f"SRC={pkt.src} DST={pkt.dst} LEN={pkt.ip_len} TOS=0x00 PREC=0x00 TTL={pkt.ttl} ID={pkt.ip_id} "]
    if pkt.proto is IpProto.UDP:
        # nf_log_dump_udp_header(): LEN is the UDP header's length field
        parts.append(f"PROTO=UDP SPT={pkt.sport} DPT={pkt.dport} LEN={UDP_HEADER_LEN + pkt.payload_len} ")
        return parts
    if pkt.proto is IpProto.ICMP:
        parts.append(f"PROTO=ICMP TYPE={pkt.icmp_type} CODE={pkt.icmp_code} ")
        if pkt.icmp_type in (IcmpType.ECHOREPLY, IcmpType.ECHO):
            parts.append(f"ID={pkt.sport} SEQ={pkt.seq} ")
        if pkt.inner is not None and pkt.icmp_type in (
            IcmpType.DEST_UNREACH,
            IcmpType.SOURCE_QUENCH,
            IcmpType.TIME_EXCEEDED,
        ):
            parts.extend(("[", *_dump_ipv4_packet(pkt.inner, target, quoted=True), "] "))
        return parts
    parts.append("PROTO=TCP ")
    if quoted:  # skb_header_pointer() of a whole tcphdr fails on the 8 quoted bytes
        return [*parts, "INCOMPLETE [8 bytes] "]
    parts.append(f"SPT={pkt.sport} DPT={pkt.dport} ")
    if target.tcp_sequence:
        parts.append(f"SEQ={pkt.seq} ACK={pkt.ack} ")
    parts.append(f"WINDOW={pkt.window} RES=0x00 ")
    parts.extend(f"{name} " for name, bit in _LOG_FLAG_ORDER if pkt.flags & bit)
    parts.append("URGP=0 ")
    return parts
