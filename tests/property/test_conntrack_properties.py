"""Invariants of the connection table under random traffic: it never holds more than
nf_conntrack_max entries (nf_conntrack_core.c __nf_conntrack_alloc(): "if (nf_conntrack_max &&
unlikely(ct_count > nf_conntrack_max))" -> early_drop() or "table full, dropping packet")."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sim.netfilter.conntrack import ConntrackTable
from sim.packet import SEQ_MASK, Packet, parse_flags
from sim.skb import Skb

SERVER = ("203.0.113.9", 443)
segments = st.tuples(
    st.integers(1, 6),  # client host 192.0.2.N
    st.sampled_from([40000, 40001, 40002]),  # client port
    st.booleans(),  # from the server?
    st.sampled_from(["S", "SA", "A", "PA", "R", "RA", "F", "FA"]),
    st.integers(0, SEQ_MASK),
    st.integers(0, SEQ_MASK),
    st.sampled_from([0.0, 0.1, 5.0, 61.0, 130.0, 500.0]),  # time until this packet
)


@given(st.sampled_from(["3.10", "6.1"]), st.integers(1, 5), st.lists(segments, max_size=60))
def test_table_never_holds_more_than_nf_conntrack_max(profile, limit, traffic):
    table = ConntrackTable(profile)
    table.sysctl.max = limit
    now = 0.0
    for host, port, from_server, flags, seq, ack, gap in traffic:
        now += gap
        client = (f"192.0.2.{host}", port)
        src, dst = (SERVER, client) if from_server else (client, SERVER)
        skb = Skb(Packet(src[0], dst[0], src[1], dst[1], seq, ack, parse_flags(flags), 1000, 0))
        table.nf_conntrack_in(skb, now)
        table.nf_conntrack_confirm(skb, now)
        assert len(table) <= limit
