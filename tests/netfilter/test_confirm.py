"""Confirmation, clashes, counters, early drop and the "table full" line, per kernel.

Expected values are typed in from each kernel's nf_conntrack_core.c (the trees named in
sim/netfilter/profiles.py): __nf_conntrack_confirm(), nf_ct_resolve_clash() and its helpers,
early_drop(), __nf_conntrack_alloc(), and ctnetlink_ct_stat_cpu_fill_info() for the counters
conntrack -S prints. The 6.18 `conntrack -S` line is a recording of conntrack-tools 1.4.7
on this machine's 6.18 kernel, in a fresh network namespace.
"""

from __future__ import annotations

import zlib

import pytest

from sim.include.nf_conntrack import (
    IPS_DST_NAT,
    IPS_DST_NAT_DONE,
    IPS_FIXED_TIMEOUT,
    IPS_NAT_CLASH,
    IPS_SRC_NAT_DONE,
    CtInfo,
)
from sim.netfilter.conntrack import (
    IPS_CONFIRMED,
    Conn,
    ConntrackTable,
    CtTuple,
    format_stats,
    invert_tuple,
    stat_names,
    stats_delta,
)
from sim.netfilter.hooks import NfVerdict
from sim.netfilter.profiles import PROFILES
from sim.packet import IpProto, Packet, parse_flags, udp_packet
from sim.skb import Skb
from sim.trace import ConfirmOutcome

ALL = list(PROFILES)
CLIENT4 = ("192.0.2.2", 45123, "198.51.100.2", 53)


def _t(t4: tuple[str, int, str, int], udp: bool) -> CtTuple:
    return (*t4, 17 if udp else 6)


def _unconfirmed(table: ConntrackTable, tup: CtTuple, udp: bool, ident: int) -> Skb:
    """A packet that passed nf_conntrack_in with a fresh, unconfirmed entry for ``tup``."""
    src, sport, dst, dport, _ = tup
    if udp:
        pkt = udp_packet(src, sport, dst, dport, 33)
    else:
        pkt = Packet(src, dst, sport, dport, 7, 0, parse_flags("S"), 29200)
    ct = Conn(tup, ident)
    ct.timeout = 30.0  # nf_conntrack_udp_timeout
    return Skb(pkt, ct=ct, ctinfo=CtInfo.NEW)


def _race(kernel: str, udp: bool, loser_reply: CtTuple | None = None, nat: bool = False):
    """Two packets with the same original tuple, both past NAT, neither confirmed; the first
    confirms, then the second. ``loser_reply``: the second's reply tuple (a different DNAT)."""
    table = ConntrackTable(kernel)
    client = _t(CLIENT4, udp)
    first = _unconfirmed(table, client, udp, 1)
    second = _unconfirmed(table, client, udp, 2)
    if nat:  # both went through nat PREROUTING/POSTROUTING (a binding, maybe the null one)
        for skb in (first, second):
            assert skb.ct is not None
            skb.ct.status |= IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE
    if loser_reply is not None:
        assert second.ct is not None
        second.ct.tuples = (client, loser_reply)
        second.ct.status |= IPS_DST_NAT
    assert table.nf_conntrack_confirm(first, 0.0).outcome is ConfirmOutcome.INSERTED
    before = table.stats.counters(table.profile)
    loser = second.ct
    result = table.nf_conntrack_confirm(second, 0.0)
    return table, second, loser, result, stats_delta(before, table.stats.counters(table.profile))


# -- TCP: never allow_clash -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kernel", "counters"),
    [
        # "out: NF_CT_STAT_INC(net, insert_failed); return NF_DROP"; the loser freed with its
        # packet: destroy_conntrack() counts delete (3.10 and el7 only)
        ("3.10", {"insert_failed": 1, "delete": 1}),
        ("el7", {"insert_failed": 1, "drop": 1, "delete": 1}),  # nf_ct_resolve_clash(): drop
        ("4.19", {"insert_failed": 1, "drop": 1}),
        ("5.10", {"insert_failed": 1, "drop": 1}),  # "if (!l4proto->allow_clash) goto drop"
        ("5.15", {"insert_failed": 1, "drop": 1}),
        ("6.1", {"insert_failed": 1, "drop": 1}),
        ("6.12", {"insert_failed": 1, "drop": 1}),
        ("6.18", {"insert_failed": 1, "drop": 1}),
    ],
)
def test_a_tcp_syn_losing_the_race_is_dropped(kernel, counters):
    table, skb, loser, result, delta = _race(kernel, udp=False, nat=True)
    assert (result.verdict, result.outcome) == (NfVerdict.DROP, ConfirmOutcome.CLASH_DROP)
    assert delta == counters
    assert len(table) == 1 and skb.ct is loser and loser.dying


# -- UDP, no NAT binding or the same one: merged into the winner (race 1 and 2) -----------------
@pytest.mark.parametrize(
    ("kernel", "verdict", "counters"),
    [
        ("3.10", NfVerdict.DROP, {"insert_failed": 1, "delete": 1}),  # no clash resolution before 4.8
        # "still accounts for this situation"; nf_conntrack_put(loser) frees it: delete
        ("el7", NfVerdict.ACCEPT, {"insert_failed": 1, "delete": 1}),
        ("4.19", NfVerdict.ACCEPT, {"insert_failed": 1}),
        ("5.10", NfVerdict.ACCEPT, {"clash_resolve": 1}),
        ("5.15", NfVerdict.ACCEPT, {"clash_resolve": 1}),
        ("6.1", NfVerdict.ACCEPT, {"clash_resolve": 1}),
        ("6.12", NfVerdict.ACCEPT, {"clash_resolve": 1}),
        ("6.18", NfVerdict.ACCEPT, {"clash_resolve": 1}),
    ],
)
@pytest.mark.parametrize("nat", [False, True])
def test_a_udp_query_losing_the_race_to_an_identical_entry(kernel, verdict, counters, nat):
    table, skb, _loser, result, delta = _race(kernel, udp=True, nat=nat)
    assert result.verdict == verdict and delta == counters
    winner = next(iter(table))
    if verdict == NfVerdict.ACCEPT:
        assert result.outcome is ConfirmOutcome.CLASH_MERGED and skb.ct is winner  # nf_ct_set()
    assert len(table) == 1


# -- UDP DNATed to two different endpoints (race 3) -------------------------------------------
OTHER_ENDPOINT: CtTuple = ("198.51.100.3", 53, "192.0.2.2", 45123, 17)


@pytest.mark.parametrize(
    ("kernel", "outcome", "counters"),
    [
        ("3.10", ConfirmOutcome.CLASH_DROP, {"insert_failed": 1, "delete": 1}),
        # "(ct->status & IPS_NAT_DONE_MASK) == 0 || nf_ct_match(ct, loser_ct)": neither
        ("el7", ConfirmOutcome.CLASH_DROP, {"insert_failed": 1, "drop": 1, "delete": 1}),
        ("4.19", ConfirmOutcome.CLASH_DROP, {"insert_failed": 1, "drop": 1}),
        # nf_ct_resolve_clash_harder(): the reply direction is unique, so insert it alone
        ("5.10", ConfirmOutcome.CLASH_REPLY_ONLY, {"clash_resolve": 1}),
        ("5.15", ConfirmOutcome.CLASH_REPLY_ONLY, {"clash_resolve": 1}),
        ("6.1", ConfirmOutcome.CLASH_REPLY_ONLY, {"clash_resolve": 1}),
        ("6.12", ConfirmOutcome.CLASH_REPLY_ONLY, {"clash_resolve": 1}),
        ("6.18", ConfirmOutcome.CLASH_REPLY_ONLY, {"clash_resolve": 1}),
    ],
)
def test_a_udp_query_dnated_elsewhere_losing_the_race(kernel, outcome, counters):
    table, skb, loser, result, delta = _race(kernel, udp=True, loser_reply=OTHER_ENDPOINT, nat=True)
    assert result.outcome is outcome and delta == counters
    if outcome is ConfirmOutcome.CLASH_REPLY_ONLY:
        assert result.verdict == NfVerdict.ACCEPT and skb.ct is loser
        # "IPS_FIXED_TIMEOUT | IPS_NAT_CLASH", confirmed, "nfct_time_stamp + HZ"
        assert loser.status & (IPS_FIXED_TIMEOUT | IPS_NAT_CLASH | IPS_CONFIRMED) == (
            IPS_FIXED_TIMEOUT | IPS_NAT_CLASH | IPS_CONFIRMED
        )
        assert loser.timeout == 1.0 and not loser.untracked
        # hidden from conntrack -L (fake ORIGINAL add), found by its reply tuple, counted
        assert list(table) != [] and loser not in list(table) and len(table) == 2
        assert table.find(OTHER_ENDPOINT, 0.5) == (loser, 1)
        assert table.find(_t(CLIENT4, True), 0.5)[0] is not loser
    else:
        assert result.verdict == NfVerdict.DROP and len(table) == 1


def test_the_winner_without_nat_merges_a_natted_loser_up_to_6_1_only():
    """6.1: "(ct->status & IPS_NAT_DONE_MASK) == 0 ||" merges whatever the loser's binding;
    6.12's nf_ct_can_merge() wants nf_ct_match() or nf_ct_match_reverse()."""
    for kernel, outcome in (("6.1", ConfirmOutcome.CLASH_MERGED), ("6.12", ConfirmOutcome.CLASH_REPLY_ONLY)):
        *_, result, _ = _race(kernel, udp=True, loser_reply=OTHER_ENDPOINT, nat=False)
        assert result.outcome is outcome, kernel


def test_6_12_merges_a_reverse_clash():
    """nf_ct_match_reverse(): a:b -> c:d in the table, c:d -> a:b confirming."""
    table = ConntrackTable("6.12")
    client = _t(CLIENT4, True)
    a = _unconfirmed(table, client, True, 1)
    b = _unconfirmed(table, invert_tuple(client), True, 2)
    b.ctinfo = CtInfo.NEW
    table.nf_conntrack_confirm(a, 0.0)
    assert table.nf_conntrack_confirm(b, 0.0).outcome is ConfirmOutcome.CLASH_MERGED
    old = ConntrackTable("6.1")
    a, b = _unconfirmed(old, client, True, 1), _unconfirmed(old, invert_tuple(client), True, 2)
    a.ct.status |= IPS_SRC_NAT_DONE  # a binding: the 6.1 shortcut does not apply
    old.nf_conntrack_confirm(a, 0.0)
    # 6.1: no match; the loser's reply tuple (= a's original) clashes too, and that entry
    # does not match either: drop
    assert old.nf_conntrack_confirm(b, 0.0).outcome is ConfirmOutcome.CLASH_DROP


# -- what confirmation counts ---------------------------------------------------------------
@pytest.mark.parametrize(("kernel", "insert"), [("3.10", 1), ("el7", 1), ("4.19", 0), ("6.18", 0)])
def test_insert_counts_confirmations_only_in_3_10(kernel, insert):
    """3.10/el7 __nf_conntrack_confirm(): NF_CT_STAT_INC(net, insert); 4.19+ count insert only
    in nf_conntrack_hash_check_insert() (ctnetlink)."""
    table = ConntrackTable(kernel)
    skb = _unconfirmed(table, _t(CLIENT4, False), False, 1)
    table.nf_conntrack_confirm(skb, 0.0)
    assert table.stats.insert == insert


# -- the counters conntrack -S prints --------------------------------------------------------
@pytest.mark.parametrize(
    ("kernel", "names"),
    [
        (
            "3.10",
            "searched found new invalid ignore delete delete_list insert insert_failed drop "
            "early_drop error search_restart",
        ),
        (
            "el7",
            "searched found new invalid ignore delete delete_list insert insert_failed drop "
            "early_drop error search_restart",
        ),
        ("4.19", "found invalid ignore insert insert_failed drop early_drop error search_restart"),
        ("5.10", "found invalid insert insert_failed drop early_drop error search_restart clash_resolve"),
        (
            "5.15",
            "found invalid insert insert_failed drop early_drop error search_restart clash_resolve "
            "chaintoolong",
        ),
        (
            "6.18",
            "found invalid insert insert_failed drop early_drop error search_restart clash_resolve "
            "chaintoolong",
        ),
    ],
)
def test_each_kernel_sends_its_own_counters(kernel, names):
    """ctnetlink_ct_stat_cpu_fill_info()'s CTA_STATS_* attributes, in order."""
    assert " ".join(stat_names(PROFILES[kernel])) == names


def test_conntrack_s_line_as_conntrack_tools_prints_it():
    """`conntrack -S` (conntrack-tools 1.4.7) in a fresh netns of the live 6.18 kernel, cpu=0."""
    table = ConntrackTable("6.18")
    assert format_stats(table.stats, table.profile) == (
        "cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 "
        "search_restart=0 clash_resolve=0 chaintoolong=0 "
    )


def test_found_counts_nat_lookups_that_hit_from_4_19_and_every_lookup_hit_before():
    """4.19+: NF_CT_STAT_INC_ATOMIC(net, found) only in nf_conntrack_tuple_taken(); 3.10:
    also in ____nf_conntrack_find()."""
    for kernel, found in (("3.10", 1), ("4.19", 0)):
        table = ConntrackTable(kernel)
        skb = Skb(Packet(*CLIENT4[::2], CLIENT4[1], CLIENT4[3], 7, 0, parse_flags("S"), 29200))
        table.nf_conntrack_in(skb, 0.0)
        table.nf_conntrack_confirm(skb, 0.0)
        again = Skb(Packet(*CLIENT4[::2], CLIENT4[1], CLIENT4[3], 7, 0, parse_flags("S"), 29200))
        table.nf_conntrack_in(again, 0.1)
        assert table.stats.found == found, kernel
        other = Conn(("192.0.2.7", CLIENT4[1], CLIENT4[2], CLIENT4[3], 6), 99)
        assert table.reply_tuple_taken(_t(CLIENT4, False), other, 0.2)
        assert table.stats.found == found + 1, kernel


# -- nf_conntrack_max, early_drop() and the "table full" line -------------------------------
def _fill(kernel: str, n: int, buckets: int = 0, netns: int | None = None) -> ConntrackTable:
    table = ConntrackTable(kernel, netns_inum=netns)
    table.sysctl.max = n
    table.sysctl.buckets = buckets
    for i in range(n):
        skb = Skb(Packet(f"192.0.2.{10 + i}", "198.51.100.2", 40000, 443, 1, 0, parse_flags("S"), 64240))
        table.nf_conntrack_in(skb, 0.0)
        table.nf_conntrack_confirm(skb, 0.0)
    assert len(table) == n
    return table


def _new(table: ConntrackTable):
    skb = Skb(Packet("192.0.2.99", "198.51.100.2", 40000, 443, 1, 0, parse_flags("S"), 64240))
    return table.nf_conntrack_in(skb, 1.0)


@pytest.mark.parametrize(
    ("kernel", "evicted"), [("3.10", 1), ("el7", 1), ("4.19", 2), ("6.1", 2), ("6.18", 2)]
)
def test_early_drop_with_one_bucket(kernel, evicted):
    """All entries in one chain: 3.10 and el7 evict one unassured entry; from 4.19
    early_drop_list() drops every unassured entry of the bucket (drops++ each)."""
    table = _fill(kernel, 2, buckets=1)
    res = _new(table)
    assert res.verdict == NfVerdict.ACCEPT and table.stats.early_drop == evicted
    assert len(table) == 2 - evicted and table.log == []


def test_the_tuple_hash_does_not_depend_on_how_the_protocol_is_held():
    """A tuple's bucket is its values': the protocol as the ``IpProto`` member (a Packet's) or
    as the plain int a compiled build (mypyc, tools/compile.py) holds in a tuple hash alike,
    and as they did in the interpreter (crc32 of the tuple's repr under the table's seed)."""
    table = ConntrackTable("4.19", hash_rnd=0x1234)
    member: CtTuple = ("192.0.2.2", 40000, "198.51.100.2", 443, IpProto.TCP)
    plain: CtTuple = ("192.0.2.2", 40000, "198.51.100.2", 443, 6)
    assert table.hash_raw(member) == table.hash_raw(plain) == zlib.crc32(repr(member).encode(), 0x1234)


def test_early_drop_scans_the_whole_table_only_on_3_10_and_el7():
    """With the default hash (65536/262144 buckets) and four entries, 3.10/el7 walk chain
    after chain until they have seen 8 entries, so they find an unassured one; 4.19+ look at
    8 buckets (4.19: effectively one) next to the new tuple's, which almost surely hold none
    of the 8 tuplehashes: the packet is dropped."""
    for kernel in ("3.10", "el7"):
        table = _fill(kernel, 4)
        assert _new(table).verdict == NfVerdict.ACCEPT and table.stats.early_drop == 1, kernel
    for kernel in ("4.19", "5.10", "6.1", "6.18"):
        table = _fill(kernel, 4)
        res = _new(table)
        assert (res.verdict, table.stats.early_drop, table.stats.drop) == (NfVerdict.DROP, 0, 1), kernel


@pytest.mark.parametrize(
    ("kernel", "netns", "line"),
    [
        # no pr_fmt in 3.10/el7 nf_conntrack_core.c
        ("3.10", None, "nf_conntrack: table full, dropping packet"),
        ("el7", None, "nf_conntrack: table full, dropping packet"),
        # #define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
        ("4.19", None, "nf_conntrack: nf_conntrack: table full, dropping packet"),
        ("6.12", 4026532412, "nf_conntrack: nf_conntrack: table full, dropping packet"),
        ("6.18", None, "nf_conntrack: nf_conntrack: table full, dropping packet"),
        ("6.18", 4026532412, "nf_conntrack: nf_conntrack: table full in netns 4026532412, dropping packet"),
    ],
)
def test_table_full_line(kernel, netns, line):
    table = _fill(kernel, 1, netns=netns)
    skb = next(iter(table))
    skb.set_assured()  # nothing evictable
    res = _new(table)
    assert res.verdict == NfVerdict.DROP and table.log == [line]


def test_the_count_includes_queued_unconfirmed_entries():
    """cnet->count is incremented at allocation: a held packet's entry takes a slot."""
    table = ConntrackTable("3.10")
    table.sysctl.max = 1
    held = _unconfirmed(table, _t(CLIENT4, False), False, 1)
    table.queued.append(held.ct)
    held.ct.set_assured()
    assert table.count == 1 and _new(table).verdict == NfVerdict.DROP
