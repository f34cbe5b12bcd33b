"""The conntrack core: lookup, confirmation, ctinfo, expiry, nf_conntrack_max, rendering."""

from sim.include.nf_conntrack import CtInfo
from sim.netfilter.conntrack import ConntrackTable, format_conntrack, format_proc_conntrack
from sim.packet import Packet, parse_flags
from sim.skb import Skb
from sim.testing import Tracker

from .conn_helpers import established


def syn(n: int) -> Skb:
    return Skb(Packet(f"192.0.2.{n}", "203.0.113.9", 40000 + n, 443, 1, 0, parse_flags("S"), 64240))


def test_ctinfo_sequence():
    f = Tracker("6.1")
    assert f.send("c", "S", 1000).ctinfo == CtInfo.NEW
    assert f.send("s", "SA", 5000, 1001).ctinfo == CtInfo.ESTABLISHED_REPLY
    assert f.send("c", "A", 1001, 5001).ctinfo == CtInfo.ESTABLISHED


def test_unconfirmed_entry_is_not_in_table_until_confirm():
    t = ConntrackTable("6.1")
    skb = syn(1)
    res = t.nf_conntrack_in(skb, 0.0)
    assert res.created and len(t) == 0
    t.nf_conntrack_confirm(skb, 0.0)
    assert len(t) == 1 and skb.ct.confirmed


def test_syn_sent_entry_expires_after_120_s():
    t = ConntrackTable("6.1")
    skb = syn(1)
    t.nf_conntrack_in(skb, 0.0)
    t.nf_conntrack_confirm(skb, 0.0)
    assert len(t.entries(119.9)) == 1
    assert t.entries(120.0) == []  # tcp_timeouts[SYN_SENT] = 2 MINS


def test_conntrack_l_line_format():
    # Shape from conntrack -L on a real host (shared/DESIGN.md):
    # tcp      6 431942 ESTABLISHED src=... dst=... sport=40166 dport=5672 src=... [ASSURED] mark=0 use=1
    f = established("6.1")
    f.send("s", "A", 5001, 121001)
    line = format_conntrack(f.ct, f.now + 58)
    assert line == (
        "tcp      6 431942 ESTABLISHED src=192.0.2.2 dst=203.0.113.9 sport=40000 dport=443 "
        "src=203.0.113.9 dst=192.0.2.2 sport=443 dport=40000 [ASSURED] mark=0 use=1"
    )
    assert format_proc_conntrack(f.ct, f.now + 58).startswith("ipv4     2 tcp      6 431942 ESTABLISHED")


def test_unreplied_flag():
    t = ConntrackTable("6.1")
    skb = syn(1)
    t.nf_conntrack_in(skb, 0.0)
    t.nf_conntrack_confirm(skb, 0.0)
    assert "[UNREPLIED] src=203.0.113.9" in format_conntrack(skb.ct, 0.0)
    assert format_conntrack(skb.ct, 0.0).startswith("tcp      6 120 SYN_SENT ")


def test_reopen_from_time_wait_creates_a_fresh_entry():
    f = established("6.1")
    f.send("c", "FA", 121001, 5001)
    f.send("s", "FA", 5001, 121002)
    f.send("c", "A", 121002, 5002)
    old = f.ct
    r = f.send("c", "S", 999999)  # CLOSE_INIT set: -NF_REPEAT, look up again
    assert r.ctinfo == CtInfo.NEW and r.ct is not old and old.dying
