"""The built-in case library (sim/cases) and its real-kernel recordings (tests/kernel/observed).

The recordings were made on 6.18 with ``python -m sim.kernel.record --all``; the table below
pins each case's last packet to what KERNEL-NOTES.md and nf_conntrack_proto_tcp.c predict, so
a re-recording on a kernel that behaves differently shows up here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.kernel.check import FIELDS, load_case
from sim.scenario.case import parse_case
from sim.scenario.loader import CASES_DIR, builtin_cases

from ..contract_v2 import is_v2

OBSERVED = Path(__file__).parents[1] / "kernel" / "observed"
NAMES = builtin_cases()


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OBSERVED / f"{name}.json").read_text())
    return data


def test_the_library_is_there() -> None:
    assert len(NAMES) >= 24 and "baseline" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_case_is_valid_and_explains_its_numbers(name: str) -> None:
    case = json.loads((CASES_DIR / f"{name}.json").read_text())
    parse_case(case)
    assert case["kernel"] in (("6.18", "el7") if is_v2(case) else ("6.1",))
    assert case["name"] == name
    assert case.get("description")
    assert all(p.get("comment") for p in case["packets"])
    assert load_case(name) == case


@pytest.mark.parametrize("name", NAMES)
def test_recording_exists_and_names_its_case(name: str) -> None:
    rec = recording(name)
    assert rec["case"] == name
    assert rec["kernel_release"]
    assert len(rec["observations"]) == len(load_case(name)["packets"])
    assert all(set(o) == set(FIELDS) for o in rec["observations"])


def test_no_recording_without_a_case() -> None:
    assert sorted(p.stem for p in OBSERVED.glob("*.json")) == NAMES


NATED_TO_CTR = {"src": "198.51.100.2:443", "dst": "192.0.2.2:40000"}
NATED_TO_REMOTE = {"src": "198.51.100.1:40000", "dst": "198.51.100.2:443"}
RAW_TO_REMOTE = {"src": "192.0.2.2:40000", "dst": "198.51.100.2:443"}


def rst(seq: int, ack: int = 0, flags: str = "R") -> dict[str, Any]:
    return {"to": "remote", "flags": flags, "seq": seq, "ack": ack}


# name: (window, reason prefix, tcp_state, fate, delivered_as, emitted) of the last packet
LAST_PACKET: dict[str, tuple[Any, ...]] = {
    "baseline": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "late-ack": (
        "IGNORE",
        "ignored ACK under lower bound 935000",
        "ESTABLISHED",
        "delivered:ctr",
        NATED_TO_CTR,
        [],
    ),
    "seq-under-lower-bound": (
        "IGNORE",
        "SEQ is under lower bound 4935744",
        "ESTABLISHED",
        "delivered:ctr",
        NATED_TO_CTR,
        [],
    ),
    "small-overshoot": (
        "IGNORE",
        "102 bytes more than expected",
        "ESTABLISHED",
        "delivered:ctr",
        NATED_TO_CTR,
        [],
    ),
    "data-beyond-window": (
        "INVALID",
        "SEQ is over upper bound 5064258",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(1001001)],
    ),
    "data-beyond-window-drop": (
        "INVALID",
        "SEQ is over upper bound 5064258",
        "ESTABLISHED",
        "dropped:host",
        None,
        [],
    ),
    "data-beyond-window-liberal": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "ack-over-upper-bound": (
        "INVALID",
        "ACK is over upper bound 1001002",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(1002001)],
    ),
    "ack-over-upper-bound-drop": (
        "INVALID",
        "ACK is over upper bound 1001002",
        "ESTABLISHED",
        "dropped:host",
        None,
        [],
    ),
    "ack-over-upper-bound-liberal": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "rst-out-of-window": (
        "INVALID",
        "SEQ is over upper bound 5064258",
        "ESTABLISHED",
        "local:host",
        None,
        [],
    ),
    # be_liberal: nf_tcp_log_invalid() accepts any window failure, RSTs included; the RST's seq
    # is not td_maxack, so the state is kept (RFC 5961). The sysctl docs' "only out of window
    # RST segments" exception is not in the code.
    "rst-out-of-window-liberal": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "old-rst-from-ctr": ("INVALID", "invalid rst", "ESTABLISHED", "delivered:remote", RAW_TO_REMOTE, []),
    "old-rst-from-ctr-liberal": (
        "INVALID",
        "invalid rst",
        "ESTABLISHED",
        "delivered:remote",
        RAW_TO_REMOTE,
        [],
    ),
    "old-rst-from-ctr-ignore-invalid-rst": (
        "ACCEPT",
        None,
        "ESTABLISHED",
        "delivered:remote",
        NATED_TO_REMOTE,
        [],
    ),
    "rst-in-window-inexact": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "syn-on-established-remote": (
        "INVALID",
        "packet (index 0) in dir 1 invalid, state ESTABLISHED",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(0, 7000001, "RA")],
    ),
    "syn-on-established-ctr": (
        "IGNORE",
        "packet (index 0) in dir 0 ignored, state ESTABLISHED",
        "ESTABLISHED",
        "delivered:remote",
        NATED_TO_REMOTE,
        [],
    ),
    "fin-to-time-wait": ("ACCEPT", None, "TIME_WAIT", "delivered:remote", NATED_TO_REMOTE, []),
    "window-scale-0": (
        "INVALID",
        "SEQ is over upper bound 1065162",
        "ESTABLISHED",
        "delivered:remote",
        RAW_TO_REMOTE,
        [],
    ),
    "window-scale-14": ("ACCEPT", None, "ESTABLISHED", "delivered:remote", NATED_TO_REMOTE, []),
    "sequence-wraparound": (
        "INVALID",
        "ACK is over upper bound 706",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(1705)],
    ),
    "sack-right-edge-over-td-end": (
        "INVALID",
        "ACK is over upper bound 1001002",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(1001001)],
    ),
    "no-flags": (
        "INVALID",
        "invalid tcp flag combination",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(0, 5000001, "RA")],
    ),
    "syn-fin": (
        "INVALID",
        "invalid tcp flag combination",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(0, 5000003, "RA")],
    ),
    # the stories' cases (issue 19). Published port: remote td_maxend = 1001001 + (509 << 7)
    "story-published-port-invalid": (
        "INVALID",
        "SEQ is over upper bound 1066154",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(5000001)],
    ),
    "story-published-port-invalid-drop": (
        "INVALID",
        "SEQ is over upper bound 1066154",
        "ESTABLISHED",
        "dropped:host",
        None,
        [],
    ),
    "story-published-port-invalid-liberal": (
        "ACCEPT",
        None,
        "ESTABLISHED",
        "delivered:ctr",
        {"src": "198.51.100.2:40000", "dst": "192.0.2.2:80"},
        [],
    ),
    # pod IP leak: ctr td_maxend = 1000001 + 65160 (the SYN/ACK's unscaled window)
    "story-pod-ip-leak": (
        "INVALID",
        "SEQ is over upper bound 1065162",
        "ESTABLISHED",
        "delivered:remote",
        RAW_TO_REMOTE,
        [],
    ),
    # be_liberal: the window check's failure is accepted, the state table still moves (FIN)
    "story-pod-ip-leak-liberal": ("ACCEPT", None, "FIN_WAIT", "delivered:remote", NATED_TO_REMOTE, []),
    # kube-proxy's forms: backend td_maxend = 5001001 + (502 << 7); the stray segment reaches the
    # pod from the backend's address; KUBE-FORWARD's DROP catches it, not the NodePort one (INPUT)
    "story-kube-clusterip-invalid": (
        "INVALID",
        "SEQ is over upper bound 5065258",
        "ESTABLISHED",
        "delivered:ctr",
        {"src": "198.51.100.2:8080", "dst": "192.0.2.2:40000"},
        [],
    ),
    "story-kube-clusterip-invalid-drop": (
        "INVALID",
        "SEQ is over upper bound 5065258",
        "ESTABLISHED",
        "dropped:host",
        None,
        [],
    ),
    "story-kube-nodeport-invalid-drop": (
        "INVALID",
        "SEQ is over upper bound 1066154",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(5000001)],
    ),
    # only one SYN had wscale: td_scale 0 both ways, remote td_maxend = 5000001 + 64240
    "story-one-sided-wscale": (
        "INVALID",
        "SEQ is over upper bound 5064242",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(1000101)],
    ),
    # tcp_new() pickup: BE_LIBERAL on both directions, so bound IV's failure is accepted
    "story-mid-stream-pickup": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
}


def test_every_case_has_an_expectation() -> None:
    assert sorted([*LAST_PACKET, *V2_FACTS]) == NAMES


@pytest.mark.parametrize("name", sorted(LAST_PACKET))
def test_recording_matches_the_kernel_notes(name: str) -> None:
    window, reason, tcp_state, fate, delivered_as, emitted = LAST_PACKET[name]
    obs = recording(name)["observations"]
    last = obs[-1]
    assert last["ctstate"] == ("INVALID" if window == "INVALID" else "ESTABLISHED")
    assert last["window"] == window
    assert (last["reason"] or "").startswith(reason or "") and (last["reason"] is None) == (reason is None)
    assert (last["tcp_state"], last["fate"], last["delivered_as"], last["emitted"]) == (
        tcp_state,
        fate,
        delivered_as,
        emitted,
    )
    assert all(o["window"] == "ACCEPT" for o in obs[:-1])  # the lead-in is always clean


# Contract v2 cases: per packet index, facts the 6.18 source decides (a subset of the fields),
# checked against the live recording.
SNAT = ["CONFIRMED", "SRC_NAT", "SRC_NAT_DONE", "DST_NAT_DONE"]
REPLIED = ["SEEN_REPLY", *SNAT]
STREAM = ["SEEN_REPLY", "ASSURED", *SNAT]
RAW_UDP = {"src": "192.0.2.2:42000", "dst": "198.51.100.2:53"}
CLASH_DROPPED = {
    "ctstate": "NEW",
    "ct_status": None,
    "ct_stats": {"insert_failed": 1, "drop": 1},
    "fate": "dropped:host",
}
V2_FACTS: dict[str, dict[int, dict[str, Any]]] = {
    # nf_conntrack_udp_packet(): SEEN_REPLY on the answer; no ASSURED before stream_ts (2 s)
    "udp-query-answer": {
        0: {
            "proto": "udp",
            "ctstate": "NEW",
            "ct_status": SNAT,
            "delivered_as": {"src": "198.51.100.1:41000", "dst": "198.51.100.2:53"},
        },
        1: {"ctstate": "ESTABLISHED", "ct_status": REPLIED, "fate": "delivered:ctr"},
        2: {"ctstate": "ESTABLISHED", "ct_status": REPLIED},
    },
    # ... and ASSURED once a packet comes after stream_ts = creation + 2 s
    "udp-stream-assured": {1: {"ct_status": REPLIED}, 2: {"ct_status": STREAM}, 3: {"ct_status": STREAM}},
    # icmp_packet(): echo request/reply are one connection keyed by the id; NAT keeps the free id
    "icmp-echo": {
        0: {
            "proto": "icmp",
            "ctstate": "NEW",
            "delivered_as": {"src": "198.51.100.1", "dst": "198.51.100.2", "id": 4660},
        },
        1: {"ctstate": "ESTABLISHED", "ct_status": REPLIED, "fate": "delivered:ctr"},
    },
    # icmp_error_message(): the quoted tuple's entry, RELATED; nf_nat_icmp_reply_translation()
    "design-udp-then-port-unreachable": {
        3: {
            "proto": "icmp",
            "ctstate": "RELATED",
            "ct_status": SNAT,
            "fate": "delivered:ctr",
            "delivered_as": {
                "src": "198.51.100.2",
                "dst": "192.0.2.2",
                "inner": {"src": "192.0.2.2:45124", "dst": "198.51.100.2:9"},
            },
        },
    },
    "icmp-frag-needed-tcp": {1: {"ctstate": "RELATED", "tcp_state": "SYN_SENT", "fate": "delivered:ctr"}},
    # no entry for the quoted tuple: the error gets none, counted as an error (icmp_error_message())
    "icmp-error-unknown-flow": {0: {"ctstate": "INVALID", "ct_stats": {"error": 1}, "fate": "local:host"}},
    # __nf_conntrack_confirm(): TCP has no clash resolution (allow_clash is false for TCP)
    "design-syn-race-two-containers": {0: CLASH_DROPPED, 1: {"ct_status": SNAT, "fate": "delivered:remote"}},
    "tcp-syn-race-snat-clash": {0: CLASH_DROPPED, 2: {"fate": "delivered:ctr2", "tcp_state": "SYN_RECV"}},
    # nf_ct_resolve_clash(): UDP allows clash; the identical entry is merged, counted clash_resolve
    "udp-dns-race": {0: {"ct_stats": {"clash_resolve": 1}, "fate": "delivered:remote"}, 1: {"ct_stats": {}}},
    # get_unique_tuple(): the taken port is replaced (nf_nat_used_tuple() counts "found")
    "snat-port-taken": {1: {"ct_stats": {"found": 1}, "fate": "delivered:remote"}},
    "udp-published-port": {
        0: {"ct_status": ["CONFIRMED", "DST_NAT", "SRC_NAT_DONE", "DST_NAT_DONE"], "fate": "delivered:ctr"},
        1: {"delivered_as": {"src": "198.51.100.1:5353", "dst": "198.51.100.2:40123"}},
    },
    # nf_ct_resolve_clash_harder() (5.6+): the loser of two different DNATs is inserted for the
    # reply direction only (IPS_NAT_CLASH, 1 s fixed timeout); both answers come back
    "story-dns-race-dnat": {
        0: {
            "ct_stats": {"clash_resolve": 1},
            "delivered_as": {"src": "198.51.100.1:42001", "dst": "198.51.100.2:53"},
        },
        1: {"fate": "delivered:remote2", "ct_stats": {}},
        2: {"fate": "delivered:ctr", "delivered_as": {"src": "203.0.113.10:53", "dst": "192.0.2.2:42001"}},
        3: {"fate": "delivered:ctr", "delivered_as": {"src": "203.0.113.10:53", "dst": "192.0.2.2:42001"}},
    },
    # the story's own packets: the loser dropped at confirm; its client's SYN again 1 s later
    # finds no entry (resolve_normal_ct(): the dropped one was never inserted), gets a fresh one
    # (init_conntrack()), and get_unique_tuple()'s nf_nat_used_tuple() finds 39000 in the
    # winner's reply tuple: nf_conntrack_tuple_taken() counts found, another port is chosen
    "story-snat-port-clash": {
        0: CLASH_DROPPED,
        1: {"ct_status": SNAT, "fate": "delivered:remote", "ct_stats": {}},
        3: {"tcp_state": "ESTABLISHED", "ct_status": STREAM},
        4: {"ctstate": "NEW", "tcp_state": "SYN_SENT", "ct_status": SNAT, "ct_stats": {"found": 1}},
    },
    # RANDOM_FULLY skips keeping the source port: two free ports, no clash
    "story-snat-port-clash-random-fully": {
        0: {"ct_stats": {}, "fate": "delivered:remote"},
        1: {"ct_stats": {}},
    },
    # nat rules only for a connection's first packet; each datagram refreshes the 2 s timeout
    "story-stale-udp-entry": {
        2: {"fate": "delivered:ctr"},
        3: {"fate": "delivered:ctr2"},
        4: {"fate": "delivered:ctr"},
        5: {"ctstate": "NEW", "fate": "delivered:ctr"},
        6: {"fate": "delivered:ctr", "delivered_as": {"src": "198.51.100.2:5060", "dst": "192.0.2.2:5060"}},
        7: {"fate": "delivered:ctr2"},
    },
    # xt_CT.c: nf_ct_set(skb, NULL, IP_CT_UNTRACKED); NAT skips a packet without an entry; the
    # host's port unreachable for the untracked datagram finds no entry to relate to (error)
    "notrack-untracked": {
        0: {"ctstate": "UNTRACKED", "window": None, "ct_status": None, "delivered_as": RAW_UDP},
        1: {"ctstate": "NEW", "delivered_as": {"src": "198.51.100.1:42001", "dst": "198.51.100.2:123"}},
        2: {"ctstate": "UNTRACKED", "window": None, "tcp_state": None, "fate": "delivered:remote"},
        3: {"ctstate": "UNTRACKED", "fate": "local:host", "ct_stats": {"error": 1}},
    },
    # nf_conntrack_udp_packet(): ASSURED only for a packet after stream_ts (2 s); TCP on the ACK
    "story-conntrack-table-full": {
        3: {"ct_status": ["SEEN_REPLY", "ASSURED", *SNAT]},
        5: {"ct_status": ["SEEN_REPLY", "CONFIRMED", "SRC_NAT_DONE", "DST_NAT_DONE"]},
        6: {"ct_status": ["SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT_DONE", "DST_NAT_DONE"]},
        8: {"ct_status": REPLIED},
    },
    "story-conntrack-table-full-notrack": {
        i: {"ctstate": "UNTRACKED", "ct_status": None, "fate": fate}
        for i, fate in ((4, "delivered:ctr2"), (5, "delivered:remote2"), (6, "delivered:ctr2"))
    },
    # nf_ct_is_expired(): the lookup skips the expired entry; the answer is a new local packet
    "udp-timeout-expired": {
        1: {"ctstate": "NEW", "fate": "local:host", "emitted": [{"to": "remote", "icmp": [3, 3]}]}
    },
}


@pytest.mark.parametrize("name", sorted(V2_FACTS))
def test_v2_recording_matches_the_source(name: str) -> None:
    obs = recording(name)["observations"]
    for index, facts in V2_FACTS[name].items():
        assert {k: obs[index][k] for k in facts} == facts, f"packet {index}"
