"""ICMP connection tracking (net/netfilter/nf_conntrack_proto_icmp.c; ``icmp_error()`` /
``nf_conntrack_icmpv4_error()`` and ``nf_conntrack_inet_error()``), per kernel version.

Queries (echo, timestamp, information, address mask) are connections: the tuple is the
addresses, the identifier (``src.u.icmp.id``) and the type and code (``dst.u.icmp``); the
reply tuple has the answering type (``invmap[]``). Only a query may create an entry
(``valid_new[]``); every packet refreshes ``nf_conntrack_icmp_timeout`` (30 s).

Errors (destination unreachable, source quench, redirect, time exceeded, parameter problem)
are not connections: ``icmp_error_message()`` (3.10, 4.19) / ``nf_conntrack_inet_error()``
(5.x on) takes the tuple of the packet the error quotes, inverts it, looks the entry up and
attaches it with ctinfo RELATED (RELATED_REPLY when the quoted packet's inverse is the
entry's reply tuple). No entry: the error is INVALID. Since 5.x (the 5.10.13 tree; absent in
4.19.1) the error's own destination must also be that direction's destination ("outer daddr
%pI4 != inner %pI4"), else INVALID.

Counters: up to 4.19 ``icmp_error`` is ``l4proto->error``: a refused error counts ``error``
and ``invalid``. From 5.x ``nf_conntrack_handle_icmp()`` counts only ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sim.include.nf_conntrack import CtDir, CtInfo, CtTuple, icmp_invert_type
from sim.netfilter.hooks import NfVerdict
from sim.packet import ICMP_ERROR_TYPES, IcmpType, IpProto

if TYPE_CHECKING:
    from sim.include.nf_conntrack import Conn
    from sim.netfilter.profiles import KernelProfile
    from sim.netfilter.sysctl import ConntrackSysctls
    from sim.packet import Packet

NR_ICMP_TYPES = 18  # include/uapi/linux/icmp.h: "18 is the highest 'known' ICMP type"
# valid_new[]: the types that may open a connection
ICMP_VALID_NEW = frozenset({IcmpType.ECHO, IcmpType.TIMESTAMP, IcmpType.INFO_REQUEST, IcmpType.ADDRESS})


class CtLookup(Protocol):
    """The table an ICMP error's quoted tuple is looked up in
    (:class:`sim.netfilter.conntrack.ConntrackTable`)."""

    def find(self, tup: CtTuple, now: float) -> tuple[Conn, CtDir] | None: ...


@dataclass(frozen=True, slots=True)
class IcmpErrorResult:
    """What ``icmp_error()`` decided before any lookup of the message's own tuple.

    ``verdict`` NF_ACCEPT with ``ct`` set: an error RELATED to ``ct`` (ctinfo ``ctinfo``);
    NF_ACCEPT without ``ct``: not an error, track it as a query. Negative: refused (INVALID),
    with the kernel's log text in ``reason`` when it logs one."""

    verdict: int
    ct: Conn | None = None
    ctinfo: CtInfo | None = None
    reason: str | None = None


def icmp_error(
    pkt: Packet,
    table: CtLookup,
    now: float,
    sysctl: ConntrackSysctls,
    profile: KernelProfile,
    prerouting: bool,
) -> IcmpErrorResult:
    """``icmp_error()`` / ``nf_conntrack_icmpv4_error()``: checksum, type, and for an error
    the entry of the packet it quotes."""
    if sysctl.checksum and prerouting and pkt.bad_checksum:
        return IcmpErrorResult(-NfVerdict.ACCEPT, reason=_text(profile, "bad hw icmp checksum"))
    if pkt.icmp_type > NR_ICMP_TYPES:
        return IcmpErrorResult(-NfVerdict.ACCEPT, reason=_text(profile, "invalid icmp type"))
    if pkt.icmp_type not in ICMP_ERROR_TYPES or pkt.inner is None:
        return IcmpErrorResult(NfVerdict.ACCEPT)
    return nf_conntrack_inet_error(pkt, table, now, profile)


def _text(profile: KernelProfile, text: str) -> str:
    """3.10 logs with nf_log_packet("nf_ct_icmp: bad HW ICMP checksum ", "... invalid ICMP
    type "); 4.19 on, through nf_l4proto_log_invalid(), in lower case."""
    if profile.log_l4proto:
        return text
    return text.replace("hw icmp", "HW ICMP").replace("icmp type", "ICMP type")


def nf_conntrack_inet_error(
    pkt: Packet, table: CtLookup, now: float, profile: KernelProfile
) -> IcmpErrorResult:
    """``nf_conntrack_inet_error()`` (``icmp_error_message()`` up to 4.19): "Are they talking
    about one of our connections?" The quoted packet's tuple, inverted, looked up."""
    inner = pkt.inner
    assert inner is not None
    # "Ordinarily, we'd expect the inverted tupleproto, but it's been preserved inside the ICMP."
    inner_tuple = (inner.dst, inner.dport, inner.src, inner.sport, int(inner.proto))
    if inner.proto is IpProto.ICMP:
        inverted = icmp_invert_type(inner.dport)
        if inverted is None:
            return IcmpErrorResult(-NfVerdict.ACCEPT)
        inner_tuple = (inner.dst, inner.sport, inner.src, inverted, int(IpProto.ICMP))
    hit = table.find(inner_tuple, now)
    if hit is None:
        return IcmpErrorResult(-NfVerdict.ACCEPT)
    ct, direction = hit
    if profile.icmp_outer_daddr_check:
        ct_daddr = ct.tuples[direction][2]
        if pkt.dst != ct_daddr:
            return IcmpErrorResult(-NfVerdict.ACCEPT, reason=f"outer daddr {pkt.dst} != inner {ct_daddr}")
    ctinfo = CtInfo.RELATED_REPLY if direction else CtInfo.RELATED
    return IcmpErrorResult(NfVerdict.ACCEPT, ct, ctinfo)


def nf_conntrack_icmp_packet(ct: Conn, now: float, sysctl: ConntrackSysctls) -> int:
    """``nf_conntrack_icmp_packet()`` (``icmp_new()`` + ``icmp_packet()`` up to 4.19): only
    a query may be an entry's first type; refresh the timeout. Returns the verdict."""
    if ct.tuples[0][3] >> 8 not in ICMP_VALID_NEW:
        return -NfVerdict.ACCEPT  # "Can't create a new ICMP `conn' with this."
    ct.timeout = now + sysctl.icmp_timeout
    return NfVerdict.ACCEPT
