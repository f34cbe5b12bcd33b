"""``race: "prev"`` in the replay: the previous packet waits before its confirmation while the
racing one runs to its end (shared/DESIGN.md, contract v2, and its second example).

Two containers open a connection from the same source port to the same service. MASQUERADE
keeps the port for both (get_unique_tuple(): nf_nat_used_tuple() sees only confirmed
entries, and the held SYN's entry is not confirmed), so the second SYN confirms first and
the held one clashes in __nf_conntrack_confirm(). TCP has no allow_clash: the held SYN is
dropped in every kernel. The counters are each kernel's: 3.10 counts new/insert/delete and
no drop; el7 (nf_ct_resolve_clash backport) also counts drop; 4.19+ count neither new nor
insert, only insert_failed and drop.
"""

from __future__ import annotations

import pytest

from sim.scenario.replay import replay_case

CASE = {
    "hosts": {"ctr2": "192.0.2.7"},
    "packets": [
        {
            "from": "ctr",
            "src": "192.0.2.2:38000",
            "dst": "198.51.100.2:80",
            "flags": "S",
            "seq": 7,
            "ack": 0,
            "win": 29200,
            "len": 0,
        },
        {
            "from": "ctr2",
            "src": "192.0.2.7:38000",
            "dst": "198.51.100.2:80",
            "flags": "S",
            "seq": 9,
            "ack": 0,
            "win": 29200,
            "len": 0,
            "race": "prev",
            "delay": 0,
        },
    ],
}


@pytest.mark.parametrize(
    ("kernel", "held", "racing"),
    [
        ("3.10", {"new": 1, "insert_failed": 1, "delete": 1}, {"new": 1, "insert": 1}),
        ("el7", {"new": 1, "insert_failed": 1, "drop": 1, "delete": 1}, {"new": 1, "insert": 1}),
        ("4.19", {"insert_failed": 1, "drop": 1}, {}),
        ("5.10", {"insert_failed": 1, "drop": 1}, {}),
        ("6.1", {"insert_failed": 1, "drop": 1}, {}),
        ("6.18", {"insert_failed": 1, "drop": 1}, {}),
    ],
)
def test_the_second_syn_confirms_first_and_the_held_one_is_dropped(kernel, held, racing):
    first, second = replay_case({**CASE, "kernel": kernel})
    assert (first["fate"], first["ct_stats"]) == ("dropped:host", held)
    assert second["fate"] == "delivered:remote"
    assert second["delivered_as"] == {"src": "198.51.100.1:38000", "dst": "198.51.100.2:80"}
    assert second["ct_stats"] == racing
    assert first["ctstate"] == second["ctstate"] == "NEW"


def test_without_the_race_the_second_syn_gets_another_port():
    """Sequential: the first entry is confirmed, so the second one's port is taken and
    nf_nat_l4proto_unique_tuple() picks another one in 1024..65535."""
    case = {**CASE, "kernel": "6.18", "packets": [dict(p) for p in CASE["packets"]]}
    del case["packets"][1]["race"]
    first, second = replay_case(case)
    assert first["fate"] == second["fate"] == "delivered:remote"
    port = int(second["delivered_as"]["src"].split(":")[1])
    assert port != 38000 and 1024 <= port <= 65535
    assert second["ct_stats"] == {"found": 1}  # nf_conntrack_tuple_taken() hit once


@pytest.mark.parametrize(
    ("delay", "second"),
    [
        (0.5, {"found": 1}),  # the retransmitted SYN finds its entry (3.10: ____nf_conntrack_find)
        (2.0, {"new": 1, "insert": 1}),  # expired after 1 s: a fresh entry (init_conntrack)
    ],
)
def test_a_delay_past_the_timeout_lets_the_entry_expire(delay, second):
    """nf_conntrack_tcp_timeout_syn_sent = 1: the entry's timer (3.10) fires during the
    delay, before the next packet arrives, so its deletion is no packet's counter change."""
    syn = {
        "from": "ctr",
        "src": "192.0.2.2:38000",
        "dst": "198.51.100.2:80",
        "flags": "S",
        "seq": 7,
        "ack": 0,
        "win": 29200,
        "len": 0,
    }
    case = {
        "kernel": "3.10",
        "sysctl": {"net.netfilter.nf_conntrack_tcp_timeout_syn_sent": 1},
        "packets": [syn, {**syn, "delay": delay}],
    }
    first, again = replay_case(case)
    assert first["ct_stats"] == {"new": 1, "insert": 1}
    assert again["ct_stats"] == second and again["fate"] == "delivered:remote"


def test_a_held_entry_counts_towards_nf_conntrack_max():
    """__nf_conntrack_alloc() counts every allocated entry (cnet->count), the held packet's
    unconfirmed one too: with nf_conntrack_max = 1 the racing SYN finds the table full, and
    early_drop() cannot evict an unconfirmed entry, so the kernel warns and drops it."""
    from sim.report.sentences import say
    from sim.scenario.replay import run_world
    from sim.trace import Why

    case = {**CASE, "kernel": "6.18", "sysctl": {"net.netfilter.nf_conntrack_max": 1}}
    w, (held, racing) = run_world(case)
    assert (held["fate"], held["ct_stats"]) == ("delivered:remote", {})
    assert (racing["fate"], racing["ct_stats"]) == ("dropped:host", {"drop": 1})
    assert [line for _, line in w.namespaces["host"].log] == [
        "nf_conntrack: nf_conntrack: table full, dropping packet"
    ]
    said = [say(e) for e in w.trace.events if e.why in (Why.QUEUED, Why.TABLE_FULL, Why.CONFIRM)]
    assert said == [
        "held in a queue before confirmation: the racing packet goes first",
        "nf_conntrack_max reached and nothing to evict: "
        "nf_conntrack: nf_conntrack: table full, dropping packet",
        "confirm: the new entry enters the conntrack table",
    ]
