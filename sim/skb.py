"""The per-packet metadata the kernel carries in ``struct sk_buff`` (include/linux/skbuff.h).

The packet itself is frozen (:class:`sim.packet.Packet`); an :class:`Skb` is the mutable
envelope that travels through one namespace's hooks: the devices it came in and goes out on,
the conntrack entry attached to it (``skb->_nfct``: entry plus ``ctinfo``) and the mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.include.nf_conntrack import Conn
    from sim.packet import Packet


class CtInfo(IntEnum):
    """``enum ip_conntrack_info`` (include/uapi/linux/netfilter/nf_conntrack_common.h)."""

    ESTABLISHED = 0
    RELATED = 1
    NEW = 2
    ESTABLISHED_REPLY = 3  # IP_CT_IS_REPLY
    RELATED_REPLY = 4
    UNTRACKED = 7


class Hook(IntEnum):
    """``enum nf_inet_hooks`` (include/uapi/linux/netfilter.h)."""

    PRE_ROUTING = 0
    LOCAL_IN = 1
    FORWARD = 2
    LOCAL_OUT = 3
    POST_ROUTING = 4


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
