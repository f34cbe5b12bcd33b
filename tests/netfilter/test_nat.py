"""sim.netfilter.nat against net/netfilter/nf_nat_core.c and nf_nat_proto.c (Linux 6.18).

Expected values typed in from the kernel source: HOOK2MANIP() (include/net/netfilter/nf_nat.h)
is SRC for POST_ROUTING and LOCAL_IN; nf_nat_setup_info() alters the reply tuple and sets
IPS_SRC_NAT/IPS_DST_NAT only when the tuple changed, IPS_*_NAT_DONE always;
get_unique_tuple() keeps the original port when it is free ("Only bother mapping if it's not
already in range and unique"); nf_nat_l4proto_unique_tuple() keeps a destination port
("If it's dst rewrite, can't change port") and draws source ports from the port's class
(1..511, 600..1023, 1024..65535); nf_nat_packet() flips the status bit in the reply direction.
"""

from __future__ import annotations

import random

from sim.include.netfilter import Hook, NatRange, NatRangeFlag
from sim.include.nf_conntrack import IPS_DST_NAT, IPS_DST_NAT_DONE, IPS_SRC_NAT, IPS_SRC_NAT_DONE
from sim.netfilter.conntrack import ConntrackTable
from sim.netfilter.nat import (
    ManipType,
    hook2manip,
    nf_nat_alloc_null_binding,
    nf_nat_initialized,
    nf_nat_packet,
    nf_nat_setup_info,
)
from sim.packet import Packet, TcpFlag
from sim.skb import Skb

CTR, HOST, REMOTE = "172.17.0.2", "10.21.17.99", "36.110.213.207"
SYN = Packet(CTR, REMOTE, 39700, 443, 1000, 0, int(TcpFlag.SYN), 29200)
MASQ = NatRange(NatRangeFlag.MAP_IPS, HOST, HOST)


def _new(table: ConntrackTable, pkt: Packet = SYN):
    skb = Skb(pkt)
    table.nf_conntrack_in(skb, 0.0)
    assert skb.ct is not None
    return skb


def test_hook2manip():
    assert [hook2manip(h) for h in Hook] == [
        ManipType.DST,  # PRE_ROUTING
        ManipType.SRC,  # LOCAL_IN
        ManipType.DST,  # FORWARD (no NAT hook there; the macro says DST)
        ManipType.DST,  # LOCAL_OUT
        ManipType.SRC,  # POST_ROUTING
    ]


def test_masquerade_binds_the_reply_tuple_and_keeps_a_free_port():
    table = ConntrackTable("6.1")
    ct = _new(table).ct
    assert not nf_nat_initialized(ct, ManipType.SRC)
    nf_nat_setup_info(table, ct, MASQ, ManipType.SRC, 0.0, random.Random(0))
    assert ct.tuples == ((CTR, 39700, REMOTE, 443, 6), (REMOTE, 443, HOST, 39700, 6))  # IPPROTO_TCP
    assert ct.status & IPS_SRC_NAT and ct.status & IPS_SRC_NAT_DONE
    assert not ct.status & (IPS_DST_NAT | IPS_DST_NAT_DONE)
    assert nf_nat_initialized(ct, ManipType.SRC)


def test_a_taken_port_is_replaced_by_one_of_the_same_class():
    table = ConntrackTable("6.1")
    first = _new(table)
    nf_nat_setup_info(table, first.ct, MASQ, ManipType.SRC, 0.0, random.Random(0))
    table.nf_conntrack_confirm(first, 0.0)
    # a second container, same source port: HOST:39700 -> REMOTE:443 is taken
    other = _new(table, Packet("172.17.0.3", REMOTE, 39700, 443, 5, 0, int(TcpFlag.SYN), 29200))
    nf_nat_setup_info(table, other.ct, MASQ, ManipType.SRC, 0.0, random.Random(0))
    r_src, r_sport, r_dst, r_dport, _ = other.ct.tuples[1]
    assert (r_src, r_sport, r_dst) == (REMOTE, 443, HOST)
    assert r_dport != 39700 and 1024 <= r_dport <= 65535


def test_an_unchanged_binding_sets_only_done():
    table = ConntrackTable("6.1")
    ct = _new(table).ct
    # the range is the packet's own source address: nothing to change
    nf_nat_setup_info(
        table, ct, NatRange(NatRangeFlag.MAP_IPS, CTR, CTR), ManipType.SRC, 0.0, random.Random(0)
    )
    assert ct.status & IPS_SRC_NAT_DONE and not ct.status & IPS_SRC_NAT
    nf_nat_alloc_null_binding(ct, ManipType.DST)
    assert ct.status & IPS_DST_NAT_DONE and not ct.status & IPS_DST_NAT


def test_nf_nat_packet_translates_by_direction():
    table = ConntrackTable("6.1")
    ct = _new(table).ct
    nf_nat_setup_info(table, ct, MASQ, ManipType.SRC, 0.0, random.Random(0))
    out = nf_nat_packet(ct, 0, Hook.POST_ROUTING, SYN)
    assert (out.src, out.sport, out.dst, out.dport) == (HOST, 39700, REMOTE, 443)
    assert nf_nat_packet(ct, 0, Hook.PRE_ROUTING, SYN) is SYN  # no DST binding
    reply = Packet(REMOTE, HOST, 443, 39700, 7, 1001, int(TcpFlag.SYN | TcpFlag.ACK), 65160)
    back = nf_nat_packet(ct, 1, Hook.PRE_ROUTING, reply)  # the reply's destination is reversed
    assert (back.src, back.sport, back.dst, back.dport) == (REMOTE, 443, CTR, 39700)
    assert nf_nat_packet(ct, 1, Hook.POST_ROUTING, reply) is reply
