"""UDP receive on a host without UDP sockets (net/ipv4/udp.c: ``__udp4_lib_rcv()``).

No socket: a datagram with a good checksum is answered with ICMP port unreachable
(``icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0)``) and dropped; one with a bad
checksum is dropped silently (``csum_error``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.net.icmp import ICMP_PORT_UNREACH, icmp_send
from sim.packet import IcmpType
from sim.trace import Step, TraceVerdict, Why

if TYPE_CHECKING:
    from sim.net.netns import Namespace
    from sim.net.world import World
    from sim.skb import Skb


def udp_rcv(w: World, ns: Namespace, skb: Skb) -> None:
    """``__udp4_lib_rcv()`` with no socket for the datagram."""
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
            why=Why.NO_UDP_SOCKET,
            ns=ns,
            verdict=TraceVerdict.NO_SOCKET,
            before=pkt,
            skb=skb,
        )
    icmp_send(w, ns, pkt, IcmpType.DEST_UNREACH, ICMP_PORT_UNREACH, skb.pid)
