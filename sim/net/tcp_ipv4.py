"""TCP receive and the RST for a segment with no socket (net/ipv4/tcp_ipv4.c)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.net.checksum import csum_error
from sim.packet import TCPHDR_ACK, TCPHDR_RST, TCPHDR_SYN, Packet, rst_reply
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
    """How the trace names the socket ``inet_lookup`` found for ``pkt``, as ``ss`` lists it: a
    connected socket by its local and peer address (``__inet_lookup_established`` finds it by
    the 4-tuple), a listening one by its local address only.

    A model listener stands for a server's listening socket and the one connection it accepts.
    Only a connection request (SYN without ACK) is the listening socket's; every other segment
    of the conversation is the connection's socket's, found in the established hash by the
    4-tuple. (The handshake's last ACK: on 3.10 the listener finds the request and
    ``tcp_check_req()`` makes the child that takes it; with TCP_NEW_SYN_RECV the request
    socket, ``ss``'s SYN-RECV, is in the established hash itself.)"""
    here, peer = f"{pkt.dst}:{pkt.dport}", f"{pkt.src}:{pkt.sport}"
    request = pkt.flags & (TCPHDR_SYN | TCPHDR_ACK) == TCPHDR_SYN
    if request and (pkt.dst, pkt.dport, pkt.src, pkt.sport) not in sockets:
        return f"the socket listening on {here}"
    return f"the socket {here} <-> {peer}"


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
