"""Invariants of confirmation, clash handling, early drop and NAT port choice, fuzzed with
racing packets (``race: "prev"``) on every kernel profile:

- an entry is confirmed at most once;
- no two confirmed entries share a tuple (in either direction);
- the number of entries never exceeds ``nf_conntrack_max``;
- NAT reply tuples are unique among confirmed entries;
- a packet whose entry lost the race is either dropped or goes on with the winner's entry
  (or, 5.10+, its own reply-only entry).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.netfilter.profiles import PROFILES
from sim.scenario.replay import _send, build_case_world
from sim.trace import ConfirmOutcome, Step

CONTAINERS = {"ctr": "192.0.2.2", "ctr2": "192.0.2.7"}


@st.composite
def racing_cases(draw: st.DrawFn) -> dict[str, Any]:
    """Two to six new flows from two containers that share source ports, TCP SYNs and UDP
    queries to one service, some racing the previous packet's confirmation."""
    n = draw(st.integers(2, 6))
    packets = []
    for i in range(n):
        frm = draw(st.sampled_from(sorted(CONTAINERS)))
        udp = draw(st.booleans())
        sport = draw(st.sampled_from([40000, 40001]))
        pkt: dict[str, Any] = {
            "from": frm,
            "src": f"{CONTAINERS[frm]}:{sport}",
            "dst": f"198.51.100.2:{53 if udp else 80}",
            "delay": 0,
        }
        if udp:
            pkt.update(proto="udp", len=33)
        else:
            pkt.update(flags="S", seq=draw(st.integers(0, 2**32 - 1)), ack=0, win=29200, len=0)
        if i and draw(st.booleans()):
            pkt["race"] = "prev"
        packets.append(pkt)
    case: dict[str, Any] = {
        "kernel": draw(st.sampled_from(list(PROFILES))),
        "hosts": {"ctr2": CONTAINERS["ctr2"]},
        "packets": packets,
    }
    limit = draw(st.none() | st.integers(1, 4))
    if limit is not None:
        case["sysctl"] = {"net.netfilter.nf_conntrack_max": limit}
    return case


@settings(max_examples=150, deadline=None)
@given(racing_cases())
def test_confirmation_invariants(case):
    w, packets = build_case_world(case)
    table = w.namespaces["host"].conntrack
    limit = table.sysctl.max
    for pid, _ in _send(w, packets):
        assert not limit or table.count <= limit
        listed = list(table)
        tuples = [t for ct in listed for t in (ct.orig, ct.reply)]
        assert len(tuples) == len(set(tuples)), "two confirmed entries share a tuple"
        replies = [ct.reply for ct in listed]
        assert len(replies) == len(set(replies))
        for ct in listed:  # each tuple finds its own entry
            assert table.find(ct.orig, w.now)[0] is ct
            assert table.find(ct.reply, w.now)[0] is ct
        del pid
    inserted = Counter(
        e.confirm.ct_id
        for e in w.trace.events
        if e.step is Step.CONNTRACK
        and e.confirm is not None
        and e.confirm.outcome in (ConfirmOutcome.INSERTED, ConfirmOutcome.CLASH_REPLY_ONLY)
    )
    assert all(n == 1 for n in inserted.values()), "an entry was confirmed twice"
    for e in w.trace.events:
        if e.confirm is not None and e.confirm.outcome is ConfirmOutcome.CLASH_MERGED:
            assert e.confirm.winner is not None and e.verdict is not None and e.verdict.value == "ACCEPT"
