"""The replay contract, version 2 (shared/DESIGN.md "Contract, version 2"): extra hosts, UDP
and ICMP packets, and the outputs proto, ct_status and ct_stats.

The two examples are the design document's, copied literally. Expected values: the kernel's
status bits (nf_conntrack_common.h), udp_packet()'s SEEN_REPLY/ASSURED rules per tree,
nf_conntrack_inet_error()'s RELATED, nf_nat_icmp_reply_translation()'s rewrite of the quoted
packet, MASQUERADE keeping a free source port, and nf_log_syslog.c's format strings.
"""

from __future__ import annotations

import json

import pytest

from sim.cli import main
from sim.scenario.replay import replay_case, run_world
from sim.trace import Step

DESIGN_UDP_ICMP = json.loads(
    """
{"_about": "a UDP query, its answer, then the remote's port unreachable for a second probe",
 "kernel": "6.18",
 "packets": [
  {"from": "ctr", "proto": "udp", "src": "192.0.2.2:45123", "dst": "198.51.100.2:53", "len": 33},
  {"from": "remote", "proto": "udp", "src": "198.51.100.2:53", "dst": "198.51.100.1:45123", "len": 90},
  {"from": "ctr", "proto": "udp", "src": "192.0.2.2:45124", "dst": "198.51.100.2:9", "len": 8},
  {"from": "remote", "proto": "icmp", "src": "198.51.100.2", "dst": "198.51.100.1", "type": 3,
   "code": 3, "inner": {"proto": "udp", "src": "198.51.100.1:45124", "dst": "198.51.100.2:9"}}
 ]}
"""
)
DESIGN_RACE = json.loads(
    """
{"_about": "two containers, one source port, one service: the second SYN confirms first",
 "kernel": "el7",
 "hosts": {"ctr2": "192.0.2.7"},
 "packets": [
  {"from": "ctr", "src": "192.0.2.2:38000", "dst": "198.51.100.2:80", "flags": "S", "seq": 7,
   "ack": 0, "win": 29200, "len": 0},
  {"from": "ctr2", "src": "192.0.2.7:38000", "dst": "198.51.100.2:80", "flags": "S", "seq": 9,
   "ack": 0, "win": 29200, "len": 0, "race": "prev", "delay": 0}
 ]}
"""
)
V2_KEYS = {"proto", "ct_status", "ct_stats"}
MASQ = ["CONFIRMED", "SRC_NAT", "SRC_NAT_DONE", "DST_NAT_DONE"]


@pytest.mark.parametrize("case", [DESIGN_UDP_ICMP, DESIGN_RACE], ids=["udp-icmp", "race"])
def test_the_design_examples_run_as_written(tmp_path, capsys, case):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    assert main(["replay", str(path), "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == len(case["packets"])
    assert all(set(o) >= V2_KEYS for o in out)


def test_udp_query_answer_and_a_related_port_unreachable():
    q, a, probe, unreach = replay_case(DESIGN_UDP_ICMP)
    assert [o["proto"] for o in (q, a, probe, unreach)] == ["udp", "udp", "udp", "icmp"]
    assert [o["ctstate"] for o in (q, a, probe, unreach)] == ["NEW", "ESTABLISHED", "NEW", "RELATED"]
    assert all(o["window"] is None and o["tcp_state"] is None for o in (q, a, probe, unreach))
    # MASQUERADE keeps the free source port; the answer comes back to the container
    assert q["delivered_as"] == {"src": "198.51.100.1:45123", "dst": "198.51.100.2:53"}
    assert a["delivered_as"] == {"src": "198.51.100.2:53", "dst": "192.0.2.2:45123"}
    assert q["ct_status"] == MASQ
    # 6.18: the answer sets SEEN_REPLY (after the tracker ran); not ASSURED within 2 s
    assert a["ct_status"] == ["SEEN_REPLY", *MASQ]
    # the error is RELATED to the probe's entry and de-NATed to the container
    assert unreach["fate"] == "delivered:ctr"
    assert unreach["delivered_as"] == {
        "src": "198.51.100.2",
        "dst": "192.0.2.2",
        "inner": {"src": "192.0.2.2:45124", "dst": "198.51.100.2:9"},  # the quoted packet, de-NATed
    }
    assert unreach["ct_status"] == MASQ
    assert unreach["ct_stats"] == {}  # found by nf_conntrack_inet_error(): nothing counted


def test_the_quoted_packet_is_translated_back_to_the_container():
    w, _ = run_world(DESIGN_UDP_ICMP)
    (got,) = [e for e in w.trace.events if e.step is Step.DELIVER and e.ns == "ctr" and e.before.inner]
    inner = got.before.inner
    assert (inner.src, inner.sport, inner.dst, inner.dport) == ("192.0.2.2", 45124, "198.51.100.2", 9)


def test_the_race_example_from_two_containers():
    """The clash itself is tests/scenario/test_race.py's; here: the second container is a host
    of its own, and both packets report the v2 fields."""
    first, second = replay_case(DESIGN_RACE)
    assert first["proto"] == second["proto"] == "tcp"
    assert second["delivered_as"] == {"src": "198.51.100.1:38000", "dst": "198.51.100.2:80"}
    assert first["ct_status"] is None  # the held SYN lost the race: its entry is gone


ECHO_CASE = {
    "kernel": "6.18",
    "hosts": {"ctr2": "192.0.2.3", "remote2": "198.51.100.3"},
    "packets": [
        {
            "from": "ctr",
            "proto": "icmp",
            "src": "192.0.2.2",
            "dst": "198.51.100.3",
            "type": 8,
            "id": 7,
            "seq": 1,
        },
        {
            "from": "ctr2",
            "proto": "icmp",
            "src": "192.0.2.3",
            "dst": "198.51.100.3",
            "type": 8,
            "id": 7,
            "seq": 1,
        },
        {
            "from": "remote2",
            "proto": "icmp",
            "src": "198.51.100.3",
            "dst": "198.51.100.1",
            "type": 0,
            "id": 7,
        },
    ],
}


def test_echo_through_masquerade_from_two_containers_to_a_second_remote():
    first, second, reply = replay_case(ECHO_CASE)
    assert first["fate"] == second["fate"] == "delivered:remote2"
    assert first["delivered_as"] == {"src": "198.51.100.1", "dst": "198.51.100.3", "id": 7}
    w, _ = run_world(ECHO_CASE)
    delivered = [e.before for e in w.trace.events if e.step is Step.DELIVER]
    # the first keeps its identifier; the second's HOST/id 7 is taken: another identifier
    assert delivered[0].sport == 7 and delivered[1].sport != 7
    # the echo reply to id 7 is the first container's, with its own identifier back
    assert reply["ctstate"] == "ESTABLISHED" and reply["fate"] == "delivered:ctr"
    assert delivered[2].dst == "192.0.2.2" and delivered[2].sport == 7 and delivered[2].icmp_type == 0


def test_a_udp_rule_matches_udp_only():
    rules = ["-I FORWARD -p udp -j DROP"]
    case = {**DESIGN_UDP_ICMP, "iptables": {"host": rules}}
    q, a, probe, _ = replay_case(case)
    assert q["fate"] == probe["fate"] == "dropped:host"
    # the query never left, so its entry was never confirmed: the answer is for the host,
    # which has no UDP socket on 45123
    assert (a["ctstate"], a["fate"], a["emitted"]) == (
        "NEW",
        "local:host",
        [{"to": "remote", "icmp": [3, 3]}],
    )
    tcp = {**DESIGN_RACE, "iptables": {"host": rules}}
    assert replay_case(tcp)[1]["fate"] == "delivered:remote"


def test_conntrack_logs_invalid_udp_with_the_udp_header():
    case = {
        "kernel": "6.18",
        "sysctl": {"net.netfilter.nf_conntrack_log_invalid": 1},
        "packets": [
            {
                "from": "remote",
                "proto": "icmp",
                "src": "198.51.100.2",
                "dst": "198.51.100.1",
                "type": 3,
                "code": 1,
                "inner": {"proto": "udp", "src": "198.51.100.1:40000", "dst": "198.51.100.2:53"},
            },
        ],
    }
    w, (obs,) = run_world(case)
    assert obs["ctstate"] == "INVALID" and obs["ct_stats"] == {"error": 1}
    # no entry: nf_conntrack_inet_error() returns -NF_ACCEPT without logging
    assert w.namespaces["host"].log == []
    case["packets"][0].update(type=19)
    del case["packets"][0]["inner"]
    w, (obs,) = run_world(case)
    (line,) = [text for _, text in w.namespaces["host"].log]
    assert line == (
        "nf_ct_proto_1: invalid icmp type IN=eth0 OUT= MAC=52:54:00:00:00:01:52:54:00:00:00:02:08:00 "
        "SRC=198.51.100.2 DST=198.51.100.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=19 CODE=1 "
    )
    assert obs["emitted"] == []  # icmp_rcv() discards an unknown type


def test_the_host_answers_an_echo_and_a_udp_datagram_to_a_closed_port():
    case = {
        "kernel": "6.18",
        "packets": [
            {
                "from": "remote",
                "proto": "icmp",
                "src": "198.51.100.2",
                "dst": "198.51.100.1",
                "type": 8,
                "id": 3,
            },
            {"from": "remote", "proto": "udp", "src": "198.51.100.2:5000", "dst": "198.51.100.1:9", "len": 1},
        ],
    }
    echo, udp = replay_case(case)
    assert echo["fate"] == "local:host" and echo["emitted"] == [{"to": "remote", "icmp": [0, 0]}]
    assert udp["fate"] == "local:host" and udp["emitted"] == [{"to": "remote", "icmp": [3, 3]}]


def test_the_log_target_prints_udp_and_an_icmp_error_with_its_quoted_packet():
    rule = "-A INPUT -j LOG --log-prefix 'in: '"
    case = {
        "kernel": "6.18",
        "iptables": {"host": [rule]},
        "packets": [
            {"from": "remote", "proto": "udp", "src": "198.51.100.2:53", "dst": "198.51.100.1:9", "len": 4},
            {
                "from": "remote",
                "proto": "icmp",
                "src": "198.51.100.2",
                "dst": "198.51.100.1",
                "type": 3,
                "code": 3,
                "inner": {"proto": "udp", "src": "198.51.100.1:9", "dst": "198.51.100.2:53"},
            },
        ],
    }
    w, _ = run_world(case)
    udp, icmp = [text.split("TOS=", 1)[0] + text.split("ID=0 ", 1)[1] for _, text in w.namespaces["host"].log]
    assert udp.endswith("SRC=198.51.100.2 DST=198.51.100.1 LEN=32 PROTO=UDP SPT=53 DPT=9 LEN=12 ")
    assert icmp.endswith(
        "SRC=198.51.100.2 DST=198.51.100.1 LEN=56 PROTO=ICMP TYPE=3 CODE=3 "
        "[SRC=198.51.100.1 DST=198.51.100.2 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 "
        "PROTO=UDP SPT=9 DPT=53 LEN=8 ] "
    )


def test_reject_answers_with_the_icmp_error_its_reject_with_names():
    """ipt_REJECT.c reject_tg(): the default icmp-port-unreachable and the others by code
    (nf_send_unreach() -> icmp_send()), from the address the packet was for when local, else
    from the address of the device the way back leaves by (docker0's for a container)."""
    case = {
        "kernel": "6.18",
        "iptables": {
            "host": [
                "-I FORWARD -p udp -j REJECT",
                "-A INPUT -p tcp --dport 22 -j REJECT --reject-with icmp-admin-prohibited",
            ]
        },
        "packets": [
            {"from": "ctr", "proto": "udp", "src": "192.0.2.2:5000", "dst": "198.51.100.2:53", "len": 10},
            {"from": "remote", "src": "198.51.100.2:40000", "dst": "198.51.100.1:22", "flags": "S", "seq": 1},
        ],
    }
    w, (udp, ssh) = run_world(case)
    assert udp["fate"] == "dropped:host" and udp["emitted"] == [{"to": "ctr", "icmp": [3, 3]}]
    assert ssh["fate"] == "dropped:host" and ssh["emitted"] == [{"to": "remote", "icmp": [3, 13]}]
    sent = [e.before for e in w.trace.events if e.step is Step.DELIVER and e.before.proto == 1]
    assert [(p.src, p.dst) for p in sent] == [("192.0.2.1", "192.0.2.2"), ("198.51.100.1", "198.51.100.2")]
