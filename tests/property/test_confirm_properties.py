"""Invariants of confirmation, clash handling, early drop and NAT port choice, fuzzed with
racing packets (``race: "prev"``) on every kernel profile, new flows and the live fuzz's
UDP/ICMP conversations:

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
from sim.testing.live_cases import v2_cases
from sim.testing.races import first_race_divergence, racing_cases
from sim.trace import ConfirmOutcome, Step


@st.composite
def _cases(draw: st.DrawFn) -> dict[str, Any]:
    """Racing new flows (:func:`racing_cases`, some with a small ``nf_conntrack_max``) or the
    live fuzz's v2 cases (:func:`v2_cases`: ICMP echoes and errors, answers, chains of races,
    expiry), on any profile."""
    kernel = draw(st.sampled_from(list(PROFILES)))
    case = draw(racing_cases(kernel=kernel) | v2_cases())
    return {**case, "kernel": kernel}


@settings(max_examples=150, deadline=None)
@given(_cases())
def test_confirmation_invariants(case):
    w, packets = build_case_world(case)
    table = w.namespaces["host"].conntrack
    limit = table.sysctl.max
    for pid, _, _ in _send(w, packets):
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


def test_diff_kernels_races_finds_the_clash_resolution_of_4_8():
    """3.10 drops a UDP query that loses the race to an identical entry; el7 (the 4.8
    clash resolution backported) moves it to the winner's entry and delivers it."""
    case = {
        "kernel": "3.10",
        "packets": [
            {"from": "ctr", "proto": "udp", "src": "192.0.2.2:40000", "dst": "198.51.100.2:53", "len": 33},
            {
                "from": "ctr",
                "proto": "udp",
                "src": "192.0.2.2:40000",
                "dst": "198.51.100.2:53",
                "len": 33,
                "race": "prev",
                "delay": 0,
            },
        ],
    }
    sig = first_race_divergence(case, "3.10", "el7")
    assert sig is not None and sig[:4] == ("udp", "held", "dropped:host", "delivered:remote")
    assert first_race_divergence(case, "5.10", "6.18") is None
