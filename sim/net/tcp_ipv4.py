"""TCP receive and the RST for a segment with no socket (net/ipv4/tcp_ipv4.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.net.checksum import csum_error
from sim.packet import TCPHDR_RST, Packet, rst_reply
from sim.trace import Why

if TYPE_CHECKING:
    from sim.net.netns import Namespace
    from sim.net.stack import Ipv4Stack
    from sim.skb import Skb


def inet_lookup(sockets: dict[tuple[str, int, str, int], Any], listeners: dict[int, Any], pkt: Packet) -> Any:
    """``__inet_lookup_skb()``: an established socket by the 4-tuple, then a listener on the
    destination port (``__inet_lookup_established`` then ``__inet_lookup_listener``)."""
    sk = sockets.get((pkt.dst, pkt.dport, pkt.src, pkt.sport))
    if sk is None:
        sk = listeners.get(pkt.dport)
    return sk


def socket_name(sockets: dict[tuple[str, int, str, int], Any], pkt: Packet) -> str:
    """How the trace names the socket ``inet_lookup`` found for ``pkt``: by its addresses, as
    ``ss`` would, established (4-tuple) or listening (local port only)."""
    if (pkt.dst, pkt.dport, pkt.src, pkt.sport) in sockets:
        return f"the socket {pkt.dst}:{pkt.dport} <-> {pkt.src}:{pkt.sport} (established)"
    return f"the socket listening on {pkt.dst}:{pkt.dport}"


def tcp_v4_send_reset(pkt: Packet, rt_local: bool = True) -> Packet | None:
    """``tcp_v4_send_reset()`` with no socket: the RST that answers ``pkt``, or None.

    "Never send a reset in response to a reset." Without a socket it answers only segments
    routed to this host (``skb_rtable(skb)->rt_type == RTN_LOCAL``). RFC 793: if the segment
    had ACK set the RST takes its sequence number from that ACK; otherwise seq 0 with
    ACK = seq + SYN + FIN + payload length. The window is 0.
    """
    if pkt.flags & TCPHDR_RST or not rt_local:
        return None
    return rst_reply(pkt)


def tcp_v4_rcv(w: Ipv4Stack, ns: Namespace, skb: Skb) -> None:
    """``tcp_v4_rcv()``: hand the segment to its socket, or answer ``no_tcp_socket`` with a RST."""
    pkt = skb.pkt
    sk = inet_lookup(ns.sockets, ns.listeners, pkt)
    if sk is not None:
        if w.trace.enabled:
            w.note(Why.SOCKET_FOUND, ns, skb, detail=socket_name(ns.sockets, pkt))
        w.deliver_to_socket(ns, sk, pkt, skb.pid)
        return
    if w.trace.enabled:
        w.note(Why.NO_SOCKET, ns, skb)
    if not ns.reset_unknown:
        if w.trace.enabled:
            w.note(Why.FIREWALL, ns, skb)
        return
    if csum_error(w, ns, skb):
        return
    rst = tcp_v4_send_reset(pkt)
    if rst is None:
        if w.trace.enabled:
            w.note(Why.NO_RST_FOR_RST, ns, skb)
        return
    w.emit_local(ns, rst, cause=skb.pid, why=Why.TCP_RESET)
