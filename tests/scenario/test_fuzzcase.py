"""Hypothesis conversations -> kernel-check case files (sim.scenario.fuzzcase)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.packet import TcpFlag, TcpOptions
from sim.scenario.case import Topology, options_json, parse_case
from sim.scenario.fuzzcase import (
    FIXES,
    MAX_PAYLOAD,
    conversation_to_case,
)
from sim.testing.strategies import Conversation, Segment, conversations

SYN_OPTS = TcpOptions(mss=1460, wscale=7, sack_perm=True)
HANDSHAKE = (
    Segment("c", int(TcpFlag.SYN), 1000, 0, 64240, 0, SYN_OPTS),
    Segment("s", int(TcpFlag.SYN | TcpFlag.ACK), 5000, 1001, 65160, 0, SYN_OPTS),
    Segment("c", int(TcpFlag.ACK), 1001, 5001, 502, 100),
)


def test_client_is_the_container_and_the_server_answers_the_host() -> None:
    case = conversation_to_case(HANDSHAKE, name="hs")
    syn, synack, data = case["packets"]
    assert (syn["from"], syn["src"], syn["dst"]) == ("ctr", "192.0.2.2:40000", "198.51.100.2:443")
    back = ("remote", "198.51.100.2:443", "198.51.100.1:40000")
    assert (synack["from"], synack["src"], synack["dst"]) == back
    assert (syn["flags"], synack["flags"], data["flags"]) == ("S", "SA", "A")
    assert (data["seq"], data["ack"], data["win"], data["len"]) == (1001, 5001, 502, 100)
    assert "len" not in syn and "options" not in data
    assert syn["options"] == {"mss": 1460, "wscale": 7, "sack_perm": True}
    assert case["name"] == "hs" and "sysctl" not in case and "iptables" not in case
    parse_case(case)


def test_fixes_add_the_drop_rule_or_be_liberal() -> None:
    drop = conversation_to_case(HANDSHAKE, name="x", fix="drop-invalid")
    liberal = conversation_to_case(HANDSHAKE, name="x", fix="be-liberal")
    assert drop["iptables"] == {"host": ["iptables -A INPUT -m conntrack --ctstate INVALID -j DROP"]}
    assert liberal["sysctl"] == {"net.netfilter.nf_conntrack_tcp_be_liberal": 1}
    for case in (drop, liberal):
        parse_case(case)


def test_a_topology_is_written_into_the_case() -> None:
    t = Topology(ctr_ip="203.0.113.2", bridge_ip="203.0.113.1", host_ip="198.51.100.7", remote_ip="192.0.2.9")
    case = conversation_to_case(HANDSHAKE, name="t", topology=t, ctr_port=50000, remote_port=80)
    assert case["packets"][1]["dst"] == "198.51.100.7:50000"
    assert parse_case(case)[0] == t


def test_options_map_to_the_case_schema() -> None:
    opts = TcpOptions(mss=536, wscale=0, sack=((10, 20), (30, 40)), ts=(1, 2))
    assert options_json(opts) == {"mss": 536, "wscale": 0, "sack": [[10, 20], [30, 40]], "ts": [1, 2]}
    assert options_json(TcpOptions()) is None


def test_no_flags_and_syn_fin_survive_the_conversion() -> None:
    odd = (Segment("s", 0, 1, 2, 3), Segment("s", int(TcpFlag.SYN | TcpFlag.FIN), 1, 0, 3))
    case = conversation_to_case(odd, name="odd")
    assert [p["flags"] for p in case["packets"]] == ["", "SF"]
    _, _, _, packets = parse_case(case)
    assert [p.pkt.flags for p in packets] == [0, int(TcpFlag.SYN | TcpFlag.FIN)]


@pytest.mark.parametrize(
    ("kwargs", "segments", "message"),
    [
        ({"fix": "both"}, HANDSHAKE, "unknown fix 'both'"),
        ({}, (Segment("x", 0, 0, 0, 0),), "sender must be 'c' or 's'"),
        ({}, (Segment("c", 16, 0, 0, 0, MAX_PAYLOAD + 1),), "payload bytes"),
    ],
)
def test_bad_input_is_one_line(kwargs: dict[str, str], segments: tuple[Segment, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        conversation_to_case(segments, name="bad", **kwargs)
    assert "\n" not in str(info.value)


@given(conversations(max_segment=MAX_PAYLOAD), st.sampled_from(FIXES))
def test_every_generated_conversation_is_a_valid_case_that_round_trips(conv: Conversation, fix: str) -> None:
    case = conversation_to_case(conv.segments, name="prop", fix=fix)
    _, _, _, packets = parse_case(case)
    assert len(packets) == len(conv.segments)
    for seg, (side, pkt, delay, _) in zip(conv.segments, packets, strict=True):
        assert side == ("ctr" if seg.frm == "c" else "remote")
        assert (pkt.seq, pkt.ack, pkt.flags, pkt.window, pkt.payload_len) == (
            seg.seq,
            seg.ack,
            seg.flags,
            seg.win,
            seg.length,
        )
        assert pkt.options == seg.options
        assert delay == 0.05  # no delay written: the replay contract's default (DESIGN.md)


def test_a_given_delay_is_written_on_every_packet() -> None:
    syn, synack = int(TcpFlag.SYN), int(TcpFlag.SYN | TcpFlag.ACK)
    segs = [Segment("c", syn, 1, 0, 1000, 0, TcpOptions()), Segment("s", synack, 9, 2, 1000, 0, TcpOptions())]
    _, _, _, packets = parse_case(conversation_to_case(segs, name="d", delay=0.001))
    assert [p.delay for p in packets] == [0.001, 0.001]


def test_kernel_and_sysctls_are_written_and_a_conversation_is_accepted() -> None:
    conv = Conversation(HANDSHAKE, 1000, 5000, 7, 7)
    case = conversation_to_case(
        conv,
        name="k",
        kernel="3.10",
        sysctl={"tcp_loose": 0, "net.netfilter.nf_conntrack_tcp_max_retrans": 2},
    )
    assert case["kernel"] == "3.10"
    assert case["sysctl"] == {
        "net.netfilter.nf_conntrack_tcp_loose": 0,
        "net.netfilter.nf_conntrack_tcp_max_retrans": 2,
    }
    both = conversation_to_case(conv, name="k", sysctl={"tcp_loose": 0}, fix="be-liberal")
    assert both["sysctl"] == {
        "net.netfilter.nf_conntrack_tcp_loose": 0,
        "net.netfilter.nf_conntrack_tcp_be_liberal": 1,
    }
    parse_case(both)
