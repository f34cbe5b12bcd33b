"""NAT port choice per kernel: get_unique_tuple() and nf_nat_l4proto_unique_tuple().

Expected values typed in from each kernel's source: 3.10 and 4.19 start at the shared
``tcp_port_rover`` (0 at boot) and walk ``++off`` ("min + off % range_size"), the rover
keeping the port found; el7 and 5.10+ start at a random offset (``prandom_u32()`` /
``get_random_u16()``); --random skips keeping the original tuple (RANDOM_ALL; 3.10 knows only
NF_NAT_RANGE_PROTO_RANDOM, so --random-fully keeps the port there); el7 and 4.19 hash the
pair for --random (``secure_port()``); 6.12+ evict a colliding SNATed TIME_WAIT entry in the
last NF_NAT_HARDER_THRESH (32) attempts for a SYN_SENT connection whose sequence advanced.
"""

from __future__ import annotations

import random

import pytest

from sim.include.netfilter import NatRange, NatRangeFlag
from sim.include.nf_conntrack import IPS_SRC_NAT, IPS_SRC_NAT_DONE
from sim.netfilter.conntrack import IPS_CONFIRMED, Conn, ConntrackTable
from sim.netfilter.nat import ManipType, nf_nat_setup_info
from sim.netfilter.tcp_states import TcpState
from sim.packet import Packet, TcpFlag
from sim.skb import Skb

HOST, REMOTE = "198.51.100.1", "198.51.100.2"
MASQ = NatRange(NatRangeFlag.MAP_IPS, HOST, HOST)


def _syn(table: ConntrackTable, ctr: str, sport: int = 40000) -> Skb:
    skb = Skb(Packet(ctr, REMOTE, sport, 80, 1000, 0, int(TcpFlag.SYN), 29200))
    table.nf_conntrack_in(skb, 0.0)
    assert skb.ct is not None
    return skb


def _masq(table: ConntrackTable, ctr: str, rng: NatRange = MASQ, seed: int = 0) -> int:
    """Bind and confirm a SYN from ``ctr``:40000; the source port it got."""
    skb = _syn(table, ctr)
    assert skb.ct is not None
    nf_nat_setup_info(table, skb.ct, rng, ManipType.SRC, 0.0, random.Random(seed))
    table.nf_conntrack_confirm(skb, 0.0)
    return skb.ct.tuples[1][3]


@pytest.mark.parametrize("kernel", ["3.10", "4.19"])
def test_the_rover_gives_1024_then_1025(kernel):
    """The rover starts at 0: min + 0 % 64512 = 1024; it stays at the port found, so the
    next clash tries 1024 (taken) and then 1025."""
    table = ConntrackTable(kernel)
    assert _masq(table, "192.0.2.2") == 40000  # kept: free
    assert _masq(table, "192.0.2.3") == 1024
    assert _masq(table, "192.0.2.4") == 1025
    assert _masq(table, "192.0.2.5") == 1026


@pytest.mark.parametrize("kernel", ["el7", "5.10", "5.15", "6.1", "6.12", "6.18"])
def test_a_random_start_from_el7_and_5_10(kernel):
    """The port is drawn from the world's RNG: another free port in 1024..65535, which
    differs with the seed."""
    ports = set()
    for seed in range(4):
        table = ConntrackTable(kernel)
        assert _masq(table, "192.0.2.2") == 40000
        port = _masq(table, "192.0.2.3", seed=seed)
        assert 1024 <= port <= 65535 and port != 40000
        ports.add(port)
    assert len(ports) > 1


@pytest.mark.parametrize(
    ("kernel", "keeps"), [("3.10", True), ("el7", False), ("4.19", False), ("6.18", False)]
)
def test_random_fully_does_not_keep_a_free_port(kernel, keeps):
    """NF_NAT_RANGE_PROTO_RANDOM_ALL skips step 1 and 3; 3.10 has no RANDOM_FULLY."""
    rng = NatRange(NatRangeFlag.MAP_IPS | NatRangeFlag.PROTO_RANDOM_FULLY, HOST, HOST)
    kept = [_masq(ConntrackTable(kernel), "192.0.2.2", rng, seed=i) == 40000 for i in range(4)]
    assert all(kept) if keeps else not any(kept)


@pytest.mark.parametrize("kernel", ["el7", "4.19"])
def test_random_hashes_the_pair_on_el7_and_4_19(kernel):
    """secure_port(tuple, dport): the same start for the same addresses and port, whatever
    the RNG says."""
    rng = NatRange(NatRangeFlag.MAP_IPS | NatRangeFlag.PROTO_RANDOM, HOST, HOST)
    ports = {_masq(ConntrackTable(kernel), "192.0.2.2", rng, seed=s) for s in range(3)}
    assert len(ports) == 1 and ports != {40000}


def _time_wait_entry(table: ConntrackTable, td_end: int) -> Conn:
    """A confirmed, SNATed connection 192.0.2.2:40000 -> REMOTE:80 mapped to HOST:40000,
    in TIME_WAIT."""
    ct = _syn(table, "192.0.2.2").ct
    assert ct is not None
    nf_nat_setup_info(table, ct, MASQ, ManipType.SRC, 0.0, random.Random(0))
    ct.tcp.state = TcpState.TIME_WAIT
    ct.tcp.seen[0].td_end = td_end
    ct.status |= IPS_SRC_NAT | IPS_SRC_NAT_DONE
    ct.timeout = 120.0
    table.nf_conntrack_confirm(Skb(Packet("192.0.2.2", REMOTE, 40000, 80), ct=ct), 0.0)
    assert ct.status & IPS_CONFIRMED
    return ct


@pytest.mark.parametrize(("kernel", "evicts"), [("6.1", False), ("6.12", True), ("6.18", True)])
def test_a_syn_evicts_a_time_wait_entry_on_its_last_port_from_6_12(kernel, evicts):
    """--to-ports 40000: one attempt, within the last 32, a SYN_SENT entry whose td_end
    (1001, the SYN's seq + 1) is after the old one's (500): 6.12+ nf_ct_kill() the old entry
    and take the port; 6.1 gives up with the used port (confirmation will then clash)."""
    table = ConntrackTable(kernel)
    old = _time_wait_entry(table, td_end=500)
    rng = NatRange(NatRangeFlag.MAP_IPS | NatRangeFlag.PROTO_SPECIFIED, HOST, HOST, 40000, 40000)
    skb = _syn(table, "192.0.2.9")
    assert skb.ct is not None and skb.ct.tcp.state == TcpState.SYN_SENT
    nf_nat_setup_info(table, skb.ct, rng, ManipType.SRC, 0.0, random.Random(0))
    assert skb.ct.tuples[1][3] == 40000
    assert old.dying is evicts and len(table) == (0 if evicts else 1)


def test_no_eviction_when_the_sequence_did_not_advance():
    """nf_seq_has_advanced(): (__s32)(new td_end - old td_end) > 0."""
    table = ConntrackTable("6.18")
    old = _time_wait_entry(table, td_end=5000)
    rng = NatRange(NatRangeFlag.MAP_IPS | NatRangeFlag.PROTO_SPECIFIED, HOST, HOST, 40000, 40000)
    skb = _syn(table, "192.0.2.9")
    assert skb.ct is not None
    nf_nat_setup_info(table, skb.ct, rng, ManipType.SRC, 0.0, random.Random(0))
    assert not old.dying and len(table) == 1
