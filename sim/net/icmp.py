"""What the host's own stack does with ICMP and what ICMP it sends (net/ipv4/icmp.c:
``icmp_rcv()``, ``icmp_echo()``, ``icmp_send()``).

An echo request to a local address is answered (``icmp_echo()`` -> ``icmp_reply()``: the
same identifier, sequence and data, from the address it was sent to). An error is handed to
the protocol's error handler and ends there (the model's host has no sockets that would
take it). ``icmp_send()`` sends the error about a packet (:func:`sim.packet.icmp_error_reply`)
from the address the packet was for when that is local, else from the address of the device
the route back to its sender leaves by. Rate limits (``icmp_ratelimit``,
``icmp_msgs_per_sec``) are not modelled: crafted cases send a handful of packets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.net.checksum import csum_error
from sim.packet import ICMP_ERROR_TYPES, IcmpType, IpProto, icmp_error_reply, icmp_packet
from sim.trace import Why

if TYPE_CHECKING:
    from sim.net.netns import Namespace
    from sim.net.stack import Ipv4Stack
    from sim.packet import Packet
    from sim.skb import Skb

ICMP_PORT_UNREACH = 3  # include/uapi/linux/icmp.h: code of ICMP_DEST_UNREACH


def icmp_echo_reply(pkt: Packet) -> Packet:
    """``icmp_echo()``: the reply to an echo request."""
    return icmp_packet(pkt.dst, pkt.src, IcmpType.ECHOREPLY, 0, pkt.sport, pkt.seq, pkt.payload_len)


def icmp_send(w: Ipv4Stack, ns: Namespace, pkt: Packet, icmp_type: int, code: int, cause: int) -> None:
    """``icmp_send()``: never about an ICMP error ("Never answer to a ICMP packet"), else the
    error about ``pkt`` out through ``ip_local_out``."""
    if pkt.proto is IpProto.ICMP and pkt.icmp_type in ICMP_ERROR_TYPES:
        return
    if pkt.dst in ns.local_addrs:
        saddr: str | None = pkt.dst
    else:
        route = ns.fib_lookup(pkt.src)
        saddr = ns.dev_addr(route.dev) if route.dev is not None else None
    if saddr is not None:
        w.emit_local(ns, icmp_error_reply(pkt, icmp_type, code, saddr), cause=cause, why=Why.ICMP_SEND)


def icmp_rcv(w: Ipv4Stack, ns: Namespace, skb: Skb) -> None:
    """``icmp_rcv()``: answer an echo request; take anything else (an error goes to the
    protocol's err_handler, which finds no socket here). A bad checksum is dropped."""
    pkt = skb.pkt
    if csum_error(w, ns, skb):
        return
    if w.trace.enabled:
        w.note(Why.ICMP_RCV, ns, skb)
    if pkt.icmp_type == IcmpType.ECHO:
        w.emit_local(ns, icmp_echo_reply(pkt), cause=skb.pid, why=Why.ICMP_SEND)
