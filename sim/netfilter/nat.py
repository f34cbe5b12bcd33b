"""NAT: binding a connection on its first packet and translating by direction
(net/netfilter/nf_nat_core.c, nf_nat_proto.c, nf_nat_masquerade.c).

A binding is made once per connection and manip type, while the entry is still unconfirmed:
``nf_nat_setup_info`` picks a unique tuple and rewrites the entry's reply tuple. Every later
packet is translated by ``nf_nat_packet`` from the entry alone. A packet without an entry --
an INVALID one -- is never translated (``nf_nat_inet_fn`` returns ACCEPT at once).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import replace
from enum import IntEnum

from sim.include.netfilter import (
    NF_INET_LOCAL_IN,
    NF_INET_POST_ROUTING,
    Hook,
    NatKind,
    NatRange,
    NatRangeFlag,
    NatRequest,
)
from sim.include.nf_conntrack import (
    IPPROTO_ICMP,
    IPS_DST_NAT,
    IPS_DST_NAT_DONE,
    IPS_DYING,
    IPS_FIXED_TIMEOUT,
    IPS_NAT_MASK,
    IPS_SRC_NAT,
    IPS_SRC_NAT_DONE,
    ORIGINAL,
    REPLY,
    Conn,
    CtInfo,
    CtTuple,
    invert_tuple,
)
from sim.include.nf_conntrack_tcp import TcpState
from sim.netfilter.conntrack import ConntrackTable
from sim.packet import IpProto, Packet, ip_to_int

NF_NAT_MAX_ATTEMPTS = 128  # nf_nat_core.c (el7, 5.10..6.1: max_attempts)


class ManipType(IntEnum):
    """``enum nf_nat_manip_type``."""

    SRC = 0
    DST = 1


# The manip types under their kernel names, for the per-packet paths:
# on Python 3.11 reading a member as a class attribute goes through EnumType.__getattr__'s
# slow hook (about 900 machine instructions; a module global costs a few).
NF_NAT_MANIP_SRC, NF_NAT_MANIP_DST = ManipType.SRC, ManipType.DST
_SRC_HOOKS = (NF_INET_POST_ROUTING, NF_INET_LOCAL_IN)


def hook2manip(hook: Hook) -> ManipType:
    """``HOOK2MANIP()``: source NAT after routing (POSTROUTING, INPUT), else destination."""
    return NF_NAT_MANIP_SRC if hook in _SRC_HOOKS else NF_NAT_MANIP_DST


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
    """``nf_nat_used_tuple()``: would ``tup``'s reply collide with a *confirmed* entry?
    (Unconfirmed entries are not in the hash: two racing connections can pick the same
    tuple, and the later confirmation clashes.)"""
    return table.reply_tuple_taken(tup, ct, now)


_USES_NAT = IPS_NAT_MASK  # | IPS_SEQ_ADJUST, which nflab never sets


def nf_nat_used_tuple_new(
    table: ConntrackTable, tup: CtTuple, ct: Conn, now: float, allow_clash: bool
) -> bool:
    """``nf_nat_used_tuple_new()`` (6.12+): as :func:`nf_nat_used_tuple`, but a clash with
    the reverse flow, neither side NATed, of a protocol with ``allow_clash`` is left to
    confirmation ("pretend the tuple is available")."""
    if not nf_nat_used_tuple(table, tup, ct, now):
        return False
    if not allow_clash or ct.status & _USES_NAT:
        return True
    hit = table.find(tup, now) or table.find(invert_tuple(tup), now)
    if hit is None:  # "clashing entry went away"
        return False
    other = hit[0]
    if other.status & _USES_NAT:
        return True
    return other.tuples[0] != ct.tuples[REPLY]


NF_NAT_HARDER_THRESH = NF_NAT_MAX_ATTEMPTS // 4


def nf_nat_used_tuple_harder(
    table: ConntrackTable, tup: CtTuple, ct: Conn, now: float, attempts_left: int, is_tcp: bool
) -> bool:
    """``nf_nat_used_tuple_harder()`` (6.12+): in the last NF_NAT_HARDER_THRESH attempts for
    a TCP connection in SYN_SENT, a colliding entry in the reply direction that is SNATed,
    in TIME_WAIT or later, not FIXED_TIMEOUT/DYING, and whose sequence the new SYN has
    passed (``nf_seq_has_advanced``) is killed and the tuple reused."""
    if attempts_left > NF_NAT_HARDER_THRESH or not is_tcp or ct.tcp.state != TcpState.SYN_SENT:
        return nf_nat_used_tuple(table, tup, ct, now)
    hit = table.find(invert_tuple(tup), now)
    if hit is None:
        return False
    other, direction = hit
    if direction == ORIGINAL or other is ct:
        return True
    if other.tcp.state < TcpState.TIME_WAIT or other.status & (IPS_FIXED_TIMEOUT | IPS_DYING):
        return True
    if not other.status & IPS_SRC_NAT:
        return True
    if (ct.tcp.seen[0].td_end - other.tcp.seen[0].td_end) & 0xFFFFFFFF >= 1 << 31 or (
        ct.tcp.seen[0].td_end == other.tcp.seen[0].td_end
    ):
        return True  # nf_seq_has_advanced(): (__s32)(new - old) > 0 fails
    table.delete(other)  # nf_ct_kill()
    return False


def get_unique_tuple(
    table: ConntrackTable,
    orig: CtTuple,
    rng: NatRange,
    ct: Conn,
    manip: ManipType,
    now: float,
    rnd: random.Random,
) -> CtTuple:
    """``get_unique_tuple()``, in three steps.

    1. A source manip without ``--random``/``--random-fully`` keeps the original tuple if it
       is in the range and unused (6.12+: ``nf_nat_used_tuple_new``); if it is not in the
       range (MASQUERADE of a container), it takes the mapping of an existing connection
       from the same source, :func:`find_appropriate_src`, if that is unused.
    2. ``find_best_ips_proto``: the range's first address (every nflab range has one).
    3. Without ``--random``/``--random-fully``, keep that tuple's port if in range and unused
       ("Only bother mapping if it's not already in range and unique"); else
       :func:`nf_nat_l4proto_unique_tuple`.

    3.10 knows ``--random`` only (no ``--random-fully``)."""
    p = table.profile
    random_all = NatRangeFlag.PROTO_RANDOM
    if p.nat_random_fully:
        random_all |= NatRangeFlag.PROTO_RANDOM_FULLY
    allow_clash = orig[4] == IpProto.UDP  # l4proto->allow_clash
    if manip == ManipType.SRC and not rng.flags & random_all:
        if _in_range(orig, manip, rng):  # "try the original tuple first"
            if p.nat_used_tuple_new:
                if not nf_nat_used_tuple_new(table, orig, ct, now, allow_clash):
                    return orig
            elif not nf_nat_used_tuple(table, orig, ct, now):
                return orig
        else:  # "Found current src map"
            mapped = find_appropriate_src(table, orig, rng)
            if mapped is not None and not nf_nat_used_tuple(table, mapped, ct, now):
                return mapped
    tup = orig
    if rng.flags & NatRangeFlag.MAP_IPS:
        tup = _with(orig, manip, addr=rng.min_addr)
    if not rng.flags & random_all:
        if rng.flags & NatRangeFlag.PROTO_SPECIFIED:
            if _in_range(tup, manip, rng) and not nf_nat_used_tuple(table, tup, ct, now):
                return tup
        elif not nf_nat_used_tuple(table, tup, ct, now):
            return tup
    return nf_nat_l4proto_unique_tuple(table, tup, rng, ct, manip, now, rnd)


def find_appropriate_src(table: ConntrackTable, orig: CtTuple, rng: NatRange) -> CtTuple | None:
    """``find_appropriate_src()`` (the same from 3.10 to 6.18): the newest SNATed entry of the
    same source (``same_src()``: original source address, port or ICMP id, protocol) --
    confirmed or not, since ``nf_nat_setup_info()`` hashes it by source at once -- whose
    mapped source with ``orig``'s destination is in ``rng``: that tuple. (An entry bound to
    itself is hashed too, but its source is ``orig``'s, which is not in the range here.)"""
    for other in table.nat_bysource.get((orig[0], orig[1], orig[4]), ()):
        src, sport, _dst, _dport, _proto = invert_tuple(other.tuples[REPLY])
        result = (src, sport, orig[2], orig[3], orig[4])  # result->dst = tuple->dst
        if _in_range(result, ManipType.SRC, rng):
            return result
    return None


def secure_port(table: ConntrackTable, tup: CtTuple, manip: ManipType) -> int:
    """``secure_ipv4_port_ephemeral()``: a keyed hash of the addresses and the other side's
    port, the same for the same pair all boot long (keyed here by the table's hash seed)."""
    other = tup[3] if manip == ManipType.SRC else tup[1]
    return zlib.crc32(repr((tup[0], tup[2], other)).encode(), table.hash_rnd ^ 0x5EC0) & 0xFFFF


def nf_nat_l4proto_unique_tuple(
    table: ConntrackTable,
    tup: CtTuple,
    rng: NatRange,
    ct: Conn,
    manip: ManipType,
    now: float,
    rnd: random.Random,
) -> CtTuple:
    """``nf_nat_l4proto_unique_tuple()`` of each kernel. Without ``--to-ports`` the range
    keeps the port's class: 1..511, 600..1023 or 1024..65535; a destination port is never
    changed implicitly ("If it's dst rewrite, can't change port").

    - 3.10 and 4.19: the start is the per-protocol rover shared by every connection
      (``tcp_port_rover``; the kernel's is global, nflab has one NAT namespace), or
      ``secure_port()`` for ``--random`` (4.19: ``prandom_u32()`` for ``--random-fully``);
      then ``++off`` through the whole range, the last candidate taken even if used; the
      rover keeps the port found.
    - el7 (backport), 5.10+ (upstream since 5.0, a504b703bb1d): a random start (el7:
      ``secure_port()`` for ``--random``); at most 128 attempts, then rounds of half as many
      from a new random start while the round is at least 16 and smaller than the range; then
      the last candidate.
    - 6.12+: a destination manip without ``--random*`` starts at 0; the attempts go through
      :func:`nf_nat_used_tuple_harder`.

    An ICMP query's identifier, whichever the manip type, takes any of 0..65535 ("id is same
    for either direction").
    """
    p, proto = table.profile, tup[4]
    port = tup[1] if manip == ManipType.SRC else tup[3]
    if proto == IPPROTO_ICMP and not rng.flags & NatRangeFlag.PROTO_SPECIFIED:
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
    fully = rng.flags & NatRangeFlag.PROTO_RANDOM_FULLY and p.nat_random_fully
    if not p.nat_random_offset:
        if rng.flags & NatRangeFlag.PROTO_RANDOM:
            off = secure_port(table, tup, manip)
        elif fully:
            off = rnd.getrandbits(16)
        else:
            off = table.nat_rovers.get(proto, 0)
        i = 0
        while True:
            candidate = _with(tup, manip, port=lo + off % size)
            i += 1
            if i != size and nf_nat_used_tuple(table, candidate, ct, now):
                off = (off + 1) & 0xFFFF
                continue
            if not rng.flags & NatRangeFlag.PROTO_RANDOM and not fully:
                table.nat_rovers[proto] = off
            return candidate
    if rng.flags & NatRangeFlag.PROTO_RANDOM and not p.nat_random_any:
        off = secure_port(table, tup, manip)
    elif (
        p.nat_dst_offset_zero
        and manip == ManipType.DST
        and not rng.flags & (NatRangeFlag.PROTO_RANDOM | NatRangeFlag.PROTO_RANDOM_FULLY)
    ):
        off = 0
    else:
        off = rnd.getrandbits(16)
    attempts = min(size, NF_NAT_MAX_ATTEMPTS)
    is_tcp = proto == IpProto.TCP
    while True:
        for i in range(attempts):
            candidate = _with(tup, manip, port=lo + off % size)
            if p.nat_evict_time_wait:
                used = nf_nat_used_tuple_harder(table, candidate, ct, now, attempts - i, is_tcp)
            else:
                used = nf_nat_used_tuple(table, candidate, ct, now)
            if not used:
                return candidate
            off = (off + 1) & 0xFFFF
        if attempts >= size or attempts < 16:
            return candidate  # the kernel gives up and uses the last one; confirm then clashes
        attempts //= 2
        off = rnd.getrandbits(16)


def nf_nat_setup_info(
    table: ConntrackTable,
    ct: Conn,
    rng: NatRange,
    manip: ManipType,
    now: float,
    rnd: random.Random,
) -> None:
    """``nf_nat_setup_info()``: bind ``ct`` for ``manip`` and alter its reply tuple."""
    curr = invert_tuple(ct.tuples[REPLY])
    new = get_unique_tuple(table, curr, rng, ct, manip, now, rnd)
    if new != curr:
        ct.tuples = (ct.tuples[0], invert_tuple(new))  # nf_conntrack_alter_reply()
        ct.status |= _NAT_BIT[manip]
        if manip == ManipType.SRC:  # hlist_add_head_rcu(&ct->nat_bysource, ...)
            orig = ct.tuples[ORIGINAL]
            table.nat_bysource.setdefault((orig[0], orig[1], orig[4]), []).insert(0, ct)
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
    if manip == NF_NAT_MANIP_SRC:
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
