"""A tracked connection (include/net/netfilter/nf_conntrack.h, nf_conntrack_tuple.h,
include/uapi/linux/netfilter/nf_conntrack_common.h).

``struct nf_conn`` with its tuples and ``enum ip_conntrack_status`` bits. The table that holds
the entries and ``nf_conntrack_in`` are :mod:`sim.netfilter.conntrack`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from sim.include.nf_conntrack_common import IPS_NAT_CLASH as NAT_CLASH
from sim.include.nf_conntrack_common import IpConntrackStatus
from sim.include.nf_conntrack_tcp import STATE_NAMES, TcpCt, TcpState
from sim.packet import ICMP_INVMAP, IpProto, Packet


class CtInfo(IntEnum):
    """``enum ip_conntrack_info`` (include/uapi/linux/netfilter/nf_conntrack_common.h)."""

    ESTABLISHED = 0
    RELATED = 1
    NEW = 2
    ESTABLISHED_REPLY = 3  # IP_CT_IS_REPLY
    RELATED_REPLY = 4
    UNTRACKED = 7


# The members under their kernel names, for the per-packet paths:
# on Python 3.11 reading a member as a class attribute goes through EnumType.__getattr__'s
# slow hook (about 900 machine instructions; a module global costs a few).
IP_CT_ESTABLISHED, IP_CT_RELATED, IP_CT_NEW = CtInfo.ESTABLISHED, CtInfo.RELATED, CtInfo.NEW
IP_CT_ESTABLISHED_REPLY, IP_CT_RELATED_REPLY = CtInfo.ESTABLISHED_REPLY, CtInfo.RELATED_REPLY
IP_CT_UNTRACKED = CtInfo.UNTRACKED


# enum ip_conntrack_status (include/uapi/linux/netfilter/nf_conntrack_common.h), as plain ints
IPS_EXPECTED: Final = int(IpConntrackStatus.EXPECTED)
IPS_SEEN_REPLY: Final = int(IpConntrackStatus.SEEN_REPLY)
IPS_ASSURED: Final = int(IpConntrackStatus.ASSURED)
IPS_CONFIRMED: Final = int(IpConntrackStatus.CONFIRMED)
IPS_SRC_NAT: Final = int(IpConntrackStatus.SRC_NAT)
IPS_DST_NAT: Final = int(IpConntrackStatus.DST_NAT)
IPS_NAT_MASK: Final = IPS_SRC_NAT | IPS_DST_NAT
IPS_SRC_NAT_DONE: Final = int(IpConntrackStatus.SRC_NAT_DONE)
IPS_DST_NAT_DONE: Final = int(IpConntrackStatus.DST_NAT_DONE)
IPS_NAT_DONE_MASK: Final = IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE
IPS_DYING: Final = int(IpConntrackStatus.DYING)
IPS_FIXED_TIMEOUT: Final = int(IpConntrackStatus.FIXED_TIMEOUT)
IPS_UNTRACKED: Final = int(IpConntrackStatus.UNTRACKED)
IPS_NAT_CLASH: Final = int(NAT_CLASH)  # 5.6+: "IPS_NAT_CLASH_BIT = IPS_UNTRACKED_BIT"


class CtDir(IntEnum):
    """``enum ip_conntrack_dir`` (include/linux/netfilter/nf_conntrack_tuple_common.h)."""

    ORIGINAL = 0
    REPLY = 1


ORIGINAL: Final = CtDir.ORIGINAL  # IP_CT_DIR_ORIGINAL
REPLY: Final = CtDir.REPLY  # IP_CT_DIR_REPLY

# (src, sport, dst, dport, protonum): ``struct nf_conntrack_tuple``. For ICMP the "ports" are
# the identifier (src.u.icmp.id) and the type and code (dst.u.all = type << 8 | code).
CtTuple = tuple[str, int, str, int, int]
IPPROTO_ICMP: Final = int(IpProto.ICMP)


def nf_ct_get_tuple(pkt: Packet) -> CtTuple:
    """``nf_ct_get_tuple()``: a packet's tuple (``icmp_pkt_to_tuple()`` for ICMP)."""
    return (pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.proto)


def icmp_invert_type(type_code: int) -> int | None:
    """``nf_conntrack_invert_icmp_tuple()`` on ``dst.u.all`` (type << 8 | code): the
    answering type with the same code, or None for a type without one."""
    answer = ICMP_INVMAP.get(type_code >> 8)  # type: ignore[call-overload]
    return None if answer is None else int(answer) << 8 | (type_code & 0xFF)


def invert_tuple(t: CtTuple) -> CtTuple:
    """``nf_ct_invert_tuple()``; an ICMP query's inverse has the answering type
    (``nf_conntrack_invert_icmp_tuple()``: "tuple->src.u.icmp.id = orig->src.u.icmp.id"). A
    type without an answer keeps its type (the kernel refuses to invert it; such an entry is
    never confirmed: ``nf_conntrack_icmp_packet()`` refuses it first)."""
    if t[4] == IPPROTO_ICMP:
        answer = icmp_invert_type(t[3])
        return (t[2], t[1], t[0], t[3] if answer is None else answer, IPPROTO_ICMP)
    return (t[2], t[3], t[0], t[1], t[4])


class Conn(TcpCt):
    """``struct nf_conn``: one tracked connection.

    ``tuplehash[ORIGINAL]`` is ``orig``; ``tuplehash[REPLY]`` is kept only when NAT made it
    differ from the inverse of ``orig`` (``reply`` computes it otherwise). The TCP part
    (``ct->proto.tcp``, :class:`TcpCt`) lives in the entry itself, as in the kernel's union,
    and ``tcp`` names it. ``id`` is 0 until someone asks the table for it
    (:meth:`ConntrackTable.ct_id`; the kernel too derives ``nf_ct_get_id()`` on demand).
    Each of these keeps an entry small."""

    __slots__ = ("_reply", "id", "mark", "orig", "status", "stream_ts", "timeout")

    def __init__(self, orig: CtTuple, ident: int = 0) -> None:
        TcpCt.__init__(self)
        self.orig = orig
        self._reply: CtTuple | None = None  # None: invert_tuple(orig)
        self.status = 0
        self.timeout = 0.0  # absolute expiry, seconds of virtual time
        self.mark = 0
        self.id = ident
        self.stream_ts = 0.0  # ct->proto.udp.stream_ts (5.10+)

    @property
    def tcp(self) -> TcpCt:
        """``ct->proto.tcp``."""
        return self

    @property
    def reply(self) -> CtTuple:
        """``tuplehash[REPLY].tuple``."""
        reply = self._reply
        return invert_tuple(self.orig) if reply is None else reply

    @property
    def nat_reply(self) -> CtTuple | None:
        """The reply tuple when it is not the inverse of the original one (NAT), else None."""
        return self._reply

    @property
    def tuples(self) -> tuple[CtTuple, CtTuple]:
        """``tuplehash[ORIGINAL/REPLY]``."""
        return self.orig, self.reply

    @tuples.setter
    def tuples(self, value: tuple[CtTuple, CtTuple]) -> None:
        orig, reply = value  # nf_conntrack_alter_reply() sets the reply tuple
        self.orig = orig
        self._reply = None if reply == invert_tuple(orig) else reply

    @property
    def proto(self) -> int:
        """``tuplehash[ORIGINAL].tuple.dst.protonum``."""
        return self.orig[4]

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
        """The untracked template of kernels < 4.12. From 5.6 the bit is ``IPS_NAT_CLASH``,
        which ``nf_ct_resolve_clash_harder()`` always sets with ``IPS_FIXED_TIMEOUT``."""
        return self.status & (IPS_UNTRACKED | IPS_FIXED_TIMEOUT) == IPS_UNTRACKED

    @property
    def dying(self) -> bool:
        return bool(self.status & IPS_DYING)

    @dying.setter
    def dying(self, value: bool) -> None:
        self.status = self.status | IPS_DYING if value else self.status & ~IPS_DYING

    def set_assured(self) -> None:
        self.status |= IPS_ASSURED

    def state_name(self) -> str:
        """The TCP state's name; "" for the protocols without states."""
        return STATE_NAMES[self.tcp.state] if self.proto == IpProto.TCP else ""

    def snapshot(self) -> CtEntry:
        """The entry as it stands now, frozen (what ``conntrack -L`` would list now)."""
        original, reply = self.tuples
        return CtEntry(
            original=original[:4],
            reply=reply[:4],
            state=self.tcp.state,
            expires=self.timeout,
            seen_reply=self.seen_reply,
            assured=self.assured,
            mark=self.mark,
            proto=original[4],
            status=self.status,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CtEntry:
    """A conntrack entry as it stood at the event: what ``conntrack -L`` would list then.
    :func:`sim.netfilter.conntrack.format_entry` renders it."""

    original: tuple[str, int, str, int]  # tuplehash[ORIGINAL]: (src, sport, dst, dport)
    reply: tuple[str, int, str, int]  # tuplehash[REPLY]
    state: TcpState  # TcpState.NONE for the protocols without states
    expires: float  # absolute expiry, seconds of virtual time
    seen_reply: bool  # IPS_SEEN_REPLY
    assured: bool  # IPS_ASSURED
    mark: int
    proto: int = 6  # tuplehash[ORIGINAL].tuple.dst.protonum (IPPROTO_TCP)
    status: int = 0  # ct->status, the IPS_* bits
