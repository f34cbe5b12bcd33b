"""UDP receive on a host without UDP sockets (net/ipv4/udp.c: ``__udp4_lib_rcv()``).

No socket: a datagram with a good checksum is answered with ICMP port unreachable
(``icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0)``) and dropped; one with a bad
checksum is dropped silently (``csum_error``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.net.checksum import csum_error
from sim.net.icmp import ICMP_PORT_UNREACH, icmp_send
from sim.packet import IcmpType
from sim.trace import Why

if TYPE_CHECKING:
    from sim.net.netns import Namespace
    from sim.net.stack import Ipv4Stack
    from sim.skb import Skb


def udp_rcv(w: Ipv4Stack, ns: Namespace, skb: Skb) -> None:
    """``__udp4_lib_rcv()`` with no socket for the datagram."""
    pkt = skb.pkt
    if csum_error(w, ns, skb):
        return
    if w.trace.enabled:
        w.note(Why.NO_UDP_SOCKET, ns, skb)
    icmp_send(w, ns, pkt, IcmpType.DEST_UNREACH, ICMP_PORT_UNREACH, skb.pid)
