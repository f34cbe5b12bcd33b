"""What the host's own stack does with ICMP and what ICMP it sends (net/ipv4/icmp.c:
``icmp_rcv()``, ``icmp_echo()``, ``icmp_send()``).

An echo request to a local address is answered (``icmp_echo()`` -> ``icmp_reply()``: the
same identifier, sequence and data, from the address it was sent to). An error is handed to
the protocol's error handler and ends there (the model's host has no sockets that would
take it). ``icmp_send()`` builds the error that quotes a packet: the packet's IP header and
as many of its bytes as fit in 576 bytes. Rate limits (``icmp_ratelimit``,
``icmp_msgs_per_sec``) are not modelled: crafted cases send a handful of packets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.packet import ICMP_HEADER_LEN, IP_HEADER_LEN, IcmpType, icmp_packet
from sim.trace import Step, TraceVerdict, Why

if TYPE_CHECKING:
    from sim.net.netns import Namespace
    from sim.net.world import World
    from sim.packet import Packet
    from sim.skb import Skb

ICMP_PORT_UNREACH = 3  # include/uapi/linux/icmp.h: code of ICMP_DEST_UNREACH
ICMP_QUOTE_ROOM = 576 - IP_HEADER_LEN - ICMP_HEADER_LEN  # icmp_send(): "room = 576" less headers
QUOTED_HEADER = IP_HEADER_LEN + 8  # what the model's inner packet stands for


def icmp_echo_reply(pkt: Packet) -> Packet:
    """``icmp_echo()``: the reply to an echo request."""
    return icmp_packet(pkt.dst, pkt.src, IcmpType.ECHOREPLY, 0, pkt.sport, pkt.seq, pkt.payload_len)


def icmp_send(pkt: Packet, icmp_type: int, code: int) -> Packet:
    """``icmp_send()``: the error about ``pkt`` from the local address it reached, quoting
    ``min(ip_len, 548)`` bytes of it."""
    quoted = min(pkt.ip_len, ICMP_QUOTE_ROOM)
    return icmp_packet(pkt.dst, pkt.src, icmp_type, code, payload_len=quoted - QUOTED_HEADER, inner=pkt)


def icmp_rcv(w: World, ns: Namespace, skb: Skb) -> None:
    """``icmp_rcv()``: answer an echo request; take anything else (an error goes to the
    protocol's err_handler, which finds no socket here). A bad checksum is dropped."""
    pkt = skb.pkt
    if pkt.bad_checksum:
        if w.trace.enabled:
            w.event(
                pid=skb.pid,
                step=Step.DROP,
                why=Why.BAD_CHECKSUM,
                ns=ns,
                verdict=TraceVerdict.DROP,
                before=pkt,
            )
        return
    if w.trace.enabled:
        w.event(
            pid=skb.pid,
            step=Step.SOCKET,
            why=Why.ICMP_RCV,
            ns=ns,
            verdict=TraceVerdict.SOCKET,
            before=pkt,
            skb=skb,
        )
    if pkt.icmp_type == IcmpType.ECHO:
        w.emit_local(ns, icmp_echo_reply(pkt), cause=skb.pid, why=Why.ICMP_SEND)
