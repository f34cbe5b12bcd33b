"""The per-packet metadata the kernel carries in ``struct sk_buff`` (include/linux/skbuff.h).

The packet itself is frozen (:class:`sim.packet.Packet`); an :class:`Skb` is the mutable
envelope that travels through one namespace's hooks: the devices it came in and goes out on,
the conntrack entry attached to it (``skb->_nfct``: entry plus ``ctinfo``) and the mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.include.nf_conntrack import Conn, CtInfo
    from sim.packet import Packet


@dataclass(slots=True)
class Skb:
    """One packet's trip through one namespace."""

    pkt: Packet
    indev: str | None = None
    outdev: str | None = None
    physindev: str | None = None  # bridge port the frame entered on (br_netfilter)
    physoutdev: str | None = None
    ct: Conn | None = None
    ctinfo: CtInfo | None = None
    mark: int = 0
    pid: int = 0  # the trace's packet id (the model's own field; the kernel has none)
