"""NAT: binding a connection on its first packet and translating by direction
(net/netfilter/nf_nat_core.c, nf_nat_proto.c, nf_nat_masquerade.c).

A binding is made once per connection and manip type, while the entry is still unconfirmed:
``nf_nat_setup_info`` picks a unique tuple and rewrites the entry's reply tuple. Every later
packet is translated by ``nf_nat_packet`` from the entry alone. A packet without an entry --
an INVALID one -- is never translated (``nf_nat_inet_fn`` returns ACCEPT at once).
"""

from __future__ import annotations

import random
from dataclasses import replace
from enum import IntEnum

from sim.netfilter.conntrack import (
    IPPROTO_ICMP,
    IPS_DST_NAT,
    IPS_DST_NAT_DONE,
    IPS_NAT_MASK,
    IPS_SRC_NAT,
    IPS_SRC_NAT_DONE,
    Conn,
    ConntrackTable,
    CtTuple,
    invert_tuple,
)
from sim.netfilter.tcp_states import REPLY
from sim.netfilter.xtables import NatKind, NatRange, NatRangeFlag, NatRequest
from sim.packet import Packet, ip_to_int
from sim.skb import CtInfo, Hook

NF_NAT_MAX_ATTEMPTS = 128  # nf_nat_proto.c


class ManipType(IntEnum):
    """``enum nf_nat_manip_type``."""

    SRC = 0
    DST = 1


def hook2manip(hook: Hook) -> ManipType:
    """``HOOK2MANIP()``: source NAT after routing (POSTROUTING, INPUT), else destination."""
    return ManipType.SRC if hook in (Hook.POST_ROUTING, Hook.LOCAL_IN) else ManipType.DST


_DONE_BIT = {ManipType.SRC: IPS_SRC_NAT_DONE, ManipType.DST: IPS_DST_NAT_DONE}
_NAT_BIT = {ManipType.SRC: IPS_SRC_NAT, ManipType.DST: IPS_DST_NAT}


def nf_nat_initialized(ct: Conn, manip: ManipType) -> bool:
    """``nf_nat_initialized()``: has this manip type been bound already?"""
    return bool(ct.status & _DONE_BIT[manip])


def masquerade_range(request: NatRequest, out_addr: str) -> NatRange:
    """``nf_nat_masquerade_ipv4()``: the out device's primary address, ports from the rule."""
    rng = request.range
    return NatRange(rng.flags | NatRangeFlag.MAP_IPS, out_addr, out_addr, rng.min_port, rng.max_port)


def _in_range(tup: CtTuple, manip: ManipType, rng: NatRange) -> bool:
    """``nf_nat_inet_in_range()`` + ``l4proto_in_range()`` for the manipulated side."""
    addr, port = (tup[0], tup[1]) if manip == ManipType.SRC else (tup[2], tup[3])
    if tup[4] == IPPROTO_ICMP:
        port = tup[1]  # icmp_in_range(): the identifier
    if rng.flags & NatRangeFlag.MAP_IPS and not _addr_in(addr, rng):
        return False
    if rng.flags & NatRangeFlag.PROTO_SPECIFIED:
        return rng.min_port <= port <= rng.max_port
    return True


def _addr_in(addr: str, rng: NatRange) -> bool:
    return ip_to_int(rng.min_addr) <= ip_to_int(addr) <= ip_to_int(rng.max_addr)


def _with(tup: CtTuple, manip: ManipType, addr: str | None = None, port: int | None = None) -> CtTuple:
    """``tup`` with the manipulated side's address and "port" replaced (an ICMP query's
    identifier, ``src.u.icmp.id``, whichever the side)."""
    src, sport, dst, dport, proto = tup
    if proto == IPPROTO_ICMP:
        sport = sport if port is None else port
        return (
            (addr or src, sport, dst, dport, proto)
            if manip == ManipType.SRC
            else (src, sport, addr or dst, dport, proto)
        )
    if manip == ManipType.SRC:
        return (addr or src, sport if port is None else port, dst, dport, proto)
    return (src, sport, addr or dst, dport if port is None else port, proto)


def nf_nat_used_tuple(table: ConntrackTable, tup: CtTuple, ct: Conn, now: float) -> bool:
    """``nf_nat_used_tuple()``: would ``tup``'s reply collide with an existing entry?"""
    return table.reply_tuple_taken(tup, ct, now)


def get_unique_tuple(
    table: ConntrackTable,
    orig: CtTuple,
    rng: NatRange,
    ct: Conn,
    manip: ManipType,
    now: float,
    rnd: random.Random,
) -> CtTuple:
    """``get_unique_tuple()``: the address from the range (``find_best_ips_proto``: the range
    has one address in every nflab use), then keep the port if it is free and in range, else
    ``nf_nat_l4proto_unique_tuple()``."""
    tup = orig
    if rng.flags & NatRangeFlag.MAP_IPS:
        tup = _with(orig, manip, addr=rng.min_addr)
    if not rng.flags & NatRangeFlag.PROTO_RANDOM_FULLY:
        # "Only bother mapping if it's not already in range and unique"
        if rng.flags & NatRangeFlag.PROTO_SPECIFIED:
            if _in_range(tup, manip, rng) and not nf_nat_used_tuple(table, tup, ct, now):
                return tup
        elif not nf_nat_used_tuple(table, tup, ct, now):
            return tup
    return nf_nat_l4proto_unique_tuple(table, tup, rng, ct, manip, now, rnd)


def nf_nat_l4proto_unique_tuple(
    table: ConntrackTable,
    tup: CtTuple,
    rng: NatRange,
    ct: Conn,
    manip: ManipType,
    now: float,
    rnd: random.Random,
) -> CtTuple:
    """``nf_nat_l4proto_unique_tuple()`` (6.x): a random start in the port range, up to 128
    attempts, then halving rounds. Without ``--to-ports`` the range keeps the port's class:
    1..511, 600..1023 or 1024..65535; a destination port is never changed implicitly. An ICMP
    query's identifier, whichever the manip type, takes any of 0..65535 ("id is same for
    either direction")."""
    port = tup[1] if manip == ManipType.SRC else tup[3]
    if tup[4] == IPPROTO_ICMP and not rng.flags & NatRangeFlag.PROTO_SPECIFIED:
        lo, size = 0, 65536
    elif not rng.flags & NatRangeFlag.PROTO_SPECIFIED:
        if manip == ManipType.DST:
            return tup  # "If it's dst rewrite, can't change port"
        if port < 1024:
            lo, size = (1, 511) if port < 512 else (600, 1023 - 600 + 1)
        else:
            lo, size = 1024, 65535 - 1024 + 1
    else:
        lo, hi = sorted((rng.min_port, rng.max_port))
        size = hi - lo + 1
    off = (
        rnd.getrandbits(16) if (rng.flags & NatRangeFlag.PROTO_RANDOM_FULLY or manip != ManipType.DST) else 0
    )
    attempts = min(size, NF_NAT_MAX_ATTEMPTS)
    while True:
        for _ in range(attempts):
            candidate = _with(tup, manip, port=lo + off % size)
            if not nf_nat_used_tuple(table, candidate, ct, now):
                return candidate
            off += 1
        if attempts >= size or attempts < 16:
            return candidate  # the kernel gives up and uses the last one; confirm then clashes
        attempts //= 2
        off = rnd.getrandbits(16)


def nf_nat_setup_info(
    table: ConntrackTable, ct: Conn, rng: NatRange, manip: ManipType, now: float, rnd: random.Random
) -> None:
    """``nf_nat_setup_info()``: bind ``ct`` for ``manip`` and alter its reply tuple."""
    curr = invert_tuple(ct.tuples[REPLY])
    new = get_unique_tuple(table, curr, rng, ct, manip, now, rnd)
    if new != curr:
        ct.tuples = (ct.tuples[0], invert_tuple(new))  # nf_conntrack_alter_reply()
        ct.status |= _NAT_BIT[manip]
    ct.status |= _DONE_BIT[manip]


def nf_nat_alloc_null_binding(ct: Conn, manip: ManipType) -> None:
    """``nf_nat_alloc_null_binding()``: no rule matched; bind to the identity."""
    ct.status |= _DONE_BIT[manip]


def nf_nat_packet(ct: Conn, direction: int, hook: Hook, pkt: Packet) -> Packet:
    """``nf_nat_packet()``: translate ``pkt`` as the binding says for this hook's manip type.

    In the reply direction the roles swap: a source-NATed connection gets its destination
    rewritten on the way back ("statusbit ^= IPS_NAT_MASK").
    """
    manip = hook2manip(hook)
    statusbit = _NAT_BIT[manip]
    if direction == REPLY:
        statusbit ^= IPS_NAT_MASK
    if not ct.status & statusbit:
        return pkt
    # nf_nat_manip_pkt(): the target is the inverse of the other direction's tuple
    target = invert_tuple(ct.tuples[1 - direction])
    if manip == ManipType.SRC:
        return pkt.rewritten(target[0], target[1], pkt.dst, pkt.dport, pkt.ttl)
    if target[4] == IPPROTO_ICMP:  # icmp_manip_pkt(): "hdr->un.echo.id = tuple->src.u.icmp.id"
        return pkt.rewritten(pkt.src, target[1], target[2], pkt.dport, pkt.ttl)
    return pkt.rewritten(pkt.src, pkt.sport, target[2], target[3], pkt.ttl)


def nf_nat_icmp_reply_translation(ct: Conn, ctinfo: CtInfo, hook: Hook, pkt: Packet) -> Packet:
    """``nf_nat_icmp_reply_translation()``: an ICMP error RELATED to a NATed entry. The
    quoted packet gets the other direction's tuple with the opposite manip type ("inner"), the
    error itself the inverse of that tuple as this hook's manip ("Change outer to look like
    the reply to an incoming packet"); the error's own header is not touched (for an error,
    ``icmp_manip_pkt()`` leaves the identifier field alone; 3.10/4.19 manip no l4 header)."""
    direction = REPLY if ctinfo == CtInfo.RELATED_REPLY else 0
    manip = hook2manip(hook)
    statusbit = _NAT_BIT[manip]
    if direction == REPLY:
        statusbit ^= IPS_NAT_MASK  # "Invert if this is reply direction"
    inner = pkt.inner
    if not ct.status & statusbit or inner is None:
        return pkt
    other = ct.tuples[1 - direction]
    if manip == ManipType.SRC:  # the inner packet: !manip, i.e. its destination
        inner = inner.rewritten(inner.src, inner.sport, other[2], other[3], inner.ttl)
    else:
        inner = inner.rewritten(other[0], other[1], inner.dst, inner.dport, inner.ttl)
    target = invert_tuple(other)
    src, dst = (target[0], pkt.dst) if manip == ManipType.SRC else (pkt.src, target[2])
    return replace(pkt.rewritten(src, pkt.sport, dst, pkt.dport, pkt.ttl), inner=inner)


def request_range(request: NatRequest, out_addr: str | None) -> NatRange:
    """The range a NAT target hands to ``nf_nat_setup_info``."""
    if request.kind is NatKind.MASQUERADE:
        if out_addr is None:
            raise ValueError("MASQUERADE needs an address on the output device")
        return masquerade_range(request, out_addr)
    return request.range
