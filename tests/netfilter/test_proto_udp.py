"""UDP tracking per kernel (nf_conntrack_proto_udp.c of each profile's tree).

Expected values are typed in from the sources: ``udp_timeouts[]`` (30/180 s in 3.10.99,
3.10.0-1160.el7 and 4.19.1; 30/120 s in 5.10.13 and later), the SEEN_REPLY / ASSURED rules
of ``udp_packet()`` / ``nf_conntrack_udp_packet()``, the 2 s ``stream_ts`` of 5.10+, and
``udp_error()``'s texts; the ``conntrack -L`` lines were printed by conntrack-tools on the
live 6.18 kernel (a namespace with 192.0.2.1 on a veth, a UDP query and answer, and the
same flow 2.2 s later).
"""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest

from sim.include.nf_conntrack import CtInfo
from sim.netfilter.conntrack import ConntrackTable, format_conntrack
from sim.netfilter.proto_udp import UdpHeaderCheck, udp_error
from sim.packet import Packet, parse_flags, udp_packet
from sim.skb import Skb

A, B = "192.0.2.1", "198.51.100.2"
OLD = ("3.10", "el7", "4.19")  # 30/180 s, ASSURED on any packet after the reply
STREAM_2S = ("5.10",)  # 30/120 s, stream timeout after 2 s, ASSURED on any packet after the reply
STREAM_ONLY = ("5.15", "6.1", "6.12", "6.18")  # ASSURED only as a stream (b7b1d02fc439)


def send(t: ConntrackTable, now: float, reply: bool = False) -> Skb:
    pkt = udp_packet(B, 53, A, 45123) if reply else udp_packet(A, 45123, B, 53, 33)
    skb = Skb(pkt)
    t.nf_conntrack_in(skb, now)
    t.nf_conntrack_confirm(skb, now)
    return skb


def flow(profile: str, third_at: float) -> ConntrackTable:
    """Query at 0, answer at 0.01, another query at ``third_at``."""
    t = ConntrackTable(profile)
    send(t, 0.0)
    send(t, 0.01, reply=True)
    send(t, third_at)
    return t


@pytest.mark.parametrize("profile", OLD + STREAM_2S + STREAM_ONLY)
def test_query_and_answer(profile):
    t = ConntrackTable(profile)
    q = send(t, 0.0)
    assert q.ctinfo == CtInfo.NEW
    (ct,) = list(t)
    assert ct.timeout == 30.0 and not ct.seen_reply  # UDP_CT_UNREPLIED = 30*HZ everywhere
    a = send(t, 1.0, reply=True)
    assert a.ctinfo == CtInfo.ESTABLISHED_REPLY
    # SEEN_REPLY is set by nf_conntrack_in() after the tracker ran: the answer itself still
    # refreshes the unreplied timeout and does not assure
    assert ct.seen_reply and not ct.assured and ct.timeout == 31.0


@pytest.mark.parametrize("profile", OLD)
def test_old_kernels_assure_and_use_180_s_on_the_next_packet(profile):
    (ct,) = list(flow(profile, 0.5))
    assert ct.assured and ct.timeout == 0.5 + 180


@pytest.mark.parametrize("profile", STREAM_2S)
def test_5_10_assures_at_once_but_streams_only_after_2_s(profile):
    (ct,) = list(flow(profile, 0.5))
    assert ct.assured and ct.timeout == 0.5 + 30
    (ct,) = list(flow(profile, 2.5))
    assert ct.assured and ct.timeout == 2.5 + 120


@pytest.mark.parametrize("profile", STREAM_ONLY)
def test_newer_kernels_assure_only_a_stream(profile):
    (ct,) = list(flow(profile, 0.5))
    assert not ct.assured and ct.timeout == 0.5 + 30
    (ct,) = list(flow(profile, 2.0))  # time_after(jiffies, stream_ts): strictly after 2 s
    assert not ct.assured
    (ct,) = list(flow(profile, 2.2))
    assert ct.assured and ct.timeout == 2.2 + 120


def test_conntrack_L_lines_as_the_live_6_18_kernel_printed_them():
    t = ConntrackTable("6.18")
    for skb in (
        Skb(udp_packet(A, 45123, A, 5353, 1)),
        Skb(udp_packet(A, 5353, A, 45123, 1)),
    ):
        t.nf_conntrack_in(skb, 0.0)
        t.nf_conntrack_confirm(skb, 0.0)
    again = Skb(udp_packet(A, 45123, A, 5353, 1))
    t.nf_conntrack_in(again, 2.2)
    lone = Skb(udp_packet(A, 45124, A, 7777, 1))
    t.nf_conntrack_in(lone, 2.2)
    t.nf_conntrack_confirm(lone, 2.2)
    assured, unreplied = list(t)
    assert format_conntrack(unreplied, 2.21) == (
        "udp      17 29 src=192.0.2.1 dst=192.0.2.1 sport=45124 dport=7777 [UNREPLIED] "
        "src=192.0.2.1 dst=192.0.2.1 sport=7777 dport=45124 mark=0 use=1"
    )
    assert format_conntrack(assured, 2.21) == (
        "udp      17 119 src=192.0.2.1 dst=192.0.2.1 sport=45123 dport=5353 "
        "src=192.0.2.1 dst=192.0.2.1 sport=5353 dport=45123 [ASSURED] mark=0 use=1"
    )


@pytest.mark.parametrize(
    ("check", "text"),
    [
        (UdpHeaderCheck(7, 7), "short packet"),
        (UdpHeaderCheck(20, 21), "truncated/malformed packet"),  # ntohs(hdr->len) > udplen
        (UdpHeaderCheck(20, 7), "truncated/malformed packet"),  # < sizeof(*hdr)
        (UdpHeaderCheck(20, 20, bad_checksum=True), "bad checksum"),
        (UdpHeaderCheck(20, 20, no_checksum=True, bad_checksum=True), None),  # "no checksum"
        (UdpHeaderCheck(20, 20), None),
    ],
)
def test_udp_error(check, text):
    t = ConntrackTable("6.18")
    assert udp_error(check, True, 1, t.profile) == text


def test_udp_error_texts_and_where_the_checksum_is_checked():
    bad = UdpHeaderCheck(20, 20, bad_checksum=True)
    el7 = ConntrackTable("el7").profile
    assert udp_error(bad, True, 1, el7) == "bad UDP checksum"  # nf_log_packet("nf_ct_udp: bad UDP checksum ")
    assert udp_error(bad, False, 1, el7) is None  # LOCAL_OUT: "assumed to be correct"
    assert udp_error(bad, True, 0, el7) is None  # nf_conntrack_checksum=0


@pytest.mark.parametrize(
    ("profile", "counted"), [("3.10", {"error": 1, "invalid": 1}), ("6.18", {"invalid": 1})]
)
def test_a_bad_checksum_is_invalid_and_counted_as_each_kernel_counts_it(profile, counted):
    t = ConntrackTable(profile)
    skb = Skb(replace(udp_packet(A, 45123, B, 53, 33), bad_checksum=True))
    res = t.nf_conntrack_in(skb, 0.0)
    assert skb.ct is None and res.reason == ("bad UDP checksum" if profile == "3.10" else "bad checksum")
    assert {k: v for k, v in asdict(t.stats).items() if v} == counted
    assert len(t) == 0


@pytest.mark.parametrize(("profile", "stream"), [("4.19", 180), ("5.10", 120), ("6.18", 120)])
def test_timeout_sysctls(profile, stream):
    t = ConntrackTable(profile)
    assert {k.value: v for k, v in t.sysctl.udp_timeouts.items()} == {
        "nf_conntrack_udp_timeout": 30,
        "nf_conntrack_udp_timeout_stream": stream,
    }
    t.sysctl.set("net.netfilter.nf_conntrack_udp_timeout", 5, t.profile)
    t.sysctl.set("net.netfilter.nf_conntrack_udp_timeout_stream", 7, t.profile)
    send(t, 0.0)
    (ct,) = list(t)
    assert ct.timeout == 5
    assert t.entries(4.9) and not t.entries(5.0)  # expired: gone at the next lookup
    with pytest.raises(ValueError, match=r"expected 0\.\.2147483647 seconds"):
        t.sysctl.set("net.netfilter.nf_conntrack_udp_timeout", -1, t.profile)


def test_udp_and_tcp_with_the_same_ports_are_two_entries():
    t = ConntrackTable("6.18")
    send(t, 0.0)
    skb = Skb(Packet(A, B, 45123, 53, 1, 0, parse_flags("S"), 64240))
    t.nf_conntrack_in(skb, 0.0)
    t.nf_conntrack_confirm(skb, 0.0)
    assert sorted(ct.proto for ct in t) == [6, 17]
