"""The LOG target's text: ``nf_log_ip_packet()`` (net/netfilter/nf_log_syslog.c) with the
``struct xt_log_info`` options of xt_LOG.c."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.netfilter.x_tables import RuleAt, XtCode, XtContext
from sim.packet import TcpFlag

if TYPE_CHECKING:
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
    """The text ``nf_log_ip_packet()`` (net/netfilter/nf_log_syslog.c) builds for a TCP packet.

    Field order from nf_log_dump_packet_common(), dump_mac_header() (only when there is an
    input device), dump_ipv4_packet() and nf_log_dump_tcp_header(). The kernel's buffer ends
    with a space after the last field; it is kept. The model's packets have TOS 0, no IP
    options, no DF/MF, no reserved bits and no urgent pointer.
    """
    pkt = skb.pkt
    parts = [f"{target.prefix}IN={skb.indev or ''} OUT={skb.outdev or ''} "]
    if skb.physindev and skb.physindev != skb.indev:
        parts.append(f"PHYSIN={skb.physindev} ")
    if skb.physoutdev and skb.physoutdev != skb.outdev:
        parts.append(f"PHYSOUT={skb.physoutdev} ")
    if skb.indev:
        parts.append(f"MAC={ctx.mac_header(skb)} ")
    parts.append(
        f"SRC={pkt.src} DST={pkt.dst} LEN={pkt.ip_len} TOS=0x00 PREC=0x00 TTL={pkt.ttl} ID={pkt.ip_id} "
    )
    parts.append(f"PROTO=TCP SPT={pkt.sport} DPT={pkt.dport} ")
    if target.tcp_sequence:
        parts.append(f"SEQ={pkt.seq} ACK={pkt.ack} ")
    parts.append(f"WINDOW={pkt.window} RES=0x00 ")
    parts.extend(f"{name} " for name, bit in _LOG_FLAG_ORDER if pkt.flags & bit)
    parts.append("URGP=0 ")
    if skb.mark:
        parts.append(f"MARK=0x{skb.mark:x} ")
    return "".join(parts)


# nf_log_dump_tcp_header() prints the flags from CWR down to FIN
_LOG_FLAG_ORDER = tuple((flag.name or "", int(flag)) for flag in reversed(TcpFlag))
