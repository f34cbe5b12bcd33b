"""Checksum verification on receive (net/core/skbuff.c ``__skb_checksum_complete()``, and the
``csum_error`` exits of ``tcp_v4_rcv()``, ``__udp4_lib_rcv()`` and ``icmp_rcv()``).

The model's packets carry no checksum, only whether a test corrupted it on purpose
(:attr:`sim.packet.Packet.bad_checksum`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.trace import Why

if TYPE_CHECKING:
    from sim.net.netns import Namespace
    from sim.net.stack import Ipv4Stack
    from sim.skb import Skb


def csum_error(w: Ipv4Stack, ns: Namespace, skb: Skb) -> bool:
    """Is the packet's checksum bad? Then the protocol drops it (``goto csum_error``), which
    the trace records."""
    if not skb.pkt.bad_checksum:
        return False
    if w.trace.enabled:
        w.note(Why.BAD_CHECKSUM, ns, skb)
    return True
