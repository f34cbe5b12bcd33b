"""``nflab diff-kernels A B --datagrams``: UDP/ICMP exchanges two profiles end differently.

Expected, from the trees' nf_conntrack_proto_udp.c: 5.10.13 sets ASSURED on any packet after
the reply, 5.15 (b7b1d02fc439) only on a stream packet more than 2 s after creation, so the
minimal difference is query, answer, query at once; 6.1 and 6.18 track UDP and ICMP alike.
"""

from __future__ import annotations

import json

from sim.testing.datagrams import datagram_cases, first_datagram_divergence
from sim.testing.races import diff_races


def test_5_10_and_5_15_differ_in_assured_and_the_case_shrinks_to_three_packets(tmp_path):
    findings = diff_races(
        "5.10",
        "5.15",
        60,
        0,
        tmp_path,
        cases=datagram_cases,
        divergence=first_datagram_divergence,
        kind="datagram",
    )
    # Each distinct difference is a finding; which one the search meets first is hypothesis's
    # business (its generation draws on the constants of the modules the process has loaded),
    # so the container's is looked up by its signature, not by its place.
    ctr = [f for f in findings if f.signature[:2] == ("udp", "container")]
    assert len(ctr) == 1
    first = ctr[0]
    assert [p["from"] for p in first.case["packets"]] == ["ctr", "remote", "ctr"]
    assert all(p["delay"] == 0 for p in first.case["packets"])
    _proto, _sender, _fa, _fb, a, b = first.signature
    assert "ASSURED" in dict(a)["ct_status"] and "ASSURED" not in dict(b)["ct_status"]
    assert first.file is not None
    assert first.file.name == f"datagram-5.10-5.15-{findings.index(first) + 1}.json"
    assert json.loads(first.file.read_text())["packets"] == first.case["packets"]


def test_6_1_and_6_18_track_datagrams_alike(tmp_path):
    assert (
        diff_races(
            "6.1",
            "6.18",
            40,
            0,
            tmp_path,
            cases=datagram_cases,
            divergence=first_datagram_divergence,
            kind="datagram",
        )
        == []
    )
