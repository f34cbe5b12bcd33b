"""A tracked connection (include/net/netfilter/nf_conntrack.h, nf_conntrack_tuple.h,
include/uapi/linux/netfilter/nf_conntrack_common.h).

``struct nf_conn`` with its tuples and ``enum ip_conntrack_status`` bits. The table that holds
the entries and ``nf_conntrack_in`` are :mod:`sim.netfilter.conntrack`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from sim.include.nf_conntrack_tcp import STATE_NAMES, TcpCt, TcpState


class CtInfo(IntEnum):
    """``enum ip_conntrack_info`` (include/uapi/linux/netfilter/nf_conntrack_common.h)."""

    ESTABLISHED = 0
    RELATED = 1
    NEW = 2
    ESTABLISHED_REPLY = 3  # IP_CT_IS_REPLY
    RELATED_REPLY = 4
    UNTRACKED = 7


# enum ip_conntrack_status (include/uapi/linux/netfilter/nf_conntrack_common.h)
IPS_EXPECTED = 1 << 0
IPS_SEEN_REPLY = 1 << 1
IPS_ASSURED = 1 << 2
IPS_CONFIRMED = 1 << 3
IPS_SRC_NAT = 1 << 4
IPS_DST_NAT = 1 << 5
IPS_NAT_MASK = IPS_SRC_NAT | IPS_DST_NAT
IPS_SRC_NAT_DONE = 1 << 7
IPS_DST_NAT_DONE = 1 << 8
IPS_DYING = 1 << 9
IPS_UNTRACKED = 1 << 12


class CtDir(IntEnum):
    """``enum ip_conntrack_dir`` (include/linux/netfilter/nf_conntrack_tuple_common.h)."""

    ORIGINAL = 0
    REPLY = 1


ORIGINAL, REPLY = CtDir.ORIGINAL, CtDir.REPLY  # IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY

CtTuple = tuple[str, int, str, int]  # (src, sport, dst, dport); the protocol is always TCP


def invert_tuple(t: CtTuple) -> CtTuple:
    """``nf_ct_invert_tuple()``."""
    return (t[2], t[3], t[0], t[1])


class Conn:
    """``struct nf_conn``: one tracked connection."""

    __slots__ = ("id", "mark", "status", "tcp", "timeout", "tuples")

    def __init__(self, orig: CtTuple, ident: int) -> None:
        self.tuples: tuple[CtTuple, CtTuple] = (orig, invert_tuple(orig))  # tuplehash[ORIGINAL/REPLY]
        self.status = 0
        self.timeout = 0.0  # absolute expiry, seconds of virtual time
        self.mark = 0
        self.id = ident
        self.tcp = TcpCt()

    # The status bits, spelled as the kernel's test_bit() helpers.
    @property
    def confirmed(self) -> bool:
        return bool(self.status & IPS_CONFIRMED)

    @property
    def seen_reply(self) -> bool:
        return bool(self.status & IPS_SEEN_REPLY)

    @property
    def assured(self) -> bool:
        return bool(self.status & IPS_ASSURED)

    @property
    def untracked(self) -> bool:
        return bool(self.status & IPS_UNTRACKED)

    @property
    def dying(self) -> bool:
        return bool(self.status & IPS_DYING)

    @dying.setter
    def dying(self, value: bool) -> None:
        self.status = self.status | IPS_DYING if value else self.status & ~IPS_DYING

    def set_assured(self) -> None:
        self.status |= IPS_ASSURED

    def state_name(self) -> str:
        return STATE_NAMES[self.tcp.state]

    def snapshot(self) -> CtEntry:
        """The entry as it stands now, frozen (what ``conntrack -L`` would list now)."""
        original, reply = self.tuples
        return CtEntry(
            original=original,
            reply=reply,
            state=self.tcp.state,
            expires=self.timeout,
            seen_reply=self.seen_reply,
            assured=self.assured,
            mark=self.mark,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CtEntry:
    """A conntrack entry as it stood at the event: what ``conntrack -L`` would list then.
    :func:`sim.netfilter.conntrack.format_entry` renders it."""

    original: tuple[str, int, str, int]  # tuplehash[ORIGINAL]: (src, sport, dst, dport)
    reply: tuple[str, int, str, int]  # tuplehash[REPLY]
    state: TcpState
    expires: float  # absolute expiry, seconds of virtual time
    seen_reply: bool  # IPS_SEEN_REPLY
    assured: bool  # IPS_ASSURED
    mark: int
