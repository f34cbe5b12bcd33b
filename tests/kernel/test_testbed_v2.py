"""The live harness on contract v2 (needs root; skipped otherwise): UDP and ICMP frames, extra
hosts, ``ct_status``/``ct_stats`` and ``race: "prev"`` held in an NFQUEUE before confirmation.

Expected values come from the 6.18 sources: nf_conntrack_proto_udp.c (SEEN_REPLY on the
answer), nf_conntrack_core.c (``__nf_conntrack_confirm()``: a TCP clash is dropped and counted
``insert_failed`` and ``drop``; ``nf_ct_resolve_clash()`` merges an identical UDP entry and
counts ``clash_resolve``), nf_conntrack_netlink.c (``ctnetlink_ct_stat_cpu_dump()`` reads
``net->ct.stat`` of the socket's namespace).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest

from sim import wire
from sim.kernel import Testbed, run_case, skip_reason
from sim.kernel.craft import ct_tuple
from sim.packet import icmp_packet, udp_packet
from sim.scenario.case import Topology

REASON = skip_reason()
CTR, REMOTE, HOST = "192.0.2.2", "198.51.100.2", "198.51.100.1"


def query(port: int, **kw: Any) -> dict[str, Any]:
    return {"from": "ctr", "proto": "udp", "src": f"{CTR}:{port}", "dst": f"{REMOTE}:53", "len": 33, **kw}


# ---------------------------------------------------------------- bytes (no kernel needed)


def test_udp_checksum_verifies_to_zero_over_the_pseudo_header() -> None:
    _hdr, seg = wire.parse_ip(wire.emit(udp_packet(CTR, 41000, REMOTE, 53, 33)))
    pseudo = sum(struct.unpack("!4H", wire.ip_to_bytes(CTR) + wire.ip_to_bytes(REMOTE))) + 17 + len(seg)
    assert wire.inet_checksum(seg, pseudo) == 0  # RFC 768: the receiver's sum is all ones
    assert struct.unpack_from("!HHH", seg) == (41000, 53, 8 + 33)


def test_icmp_error_quotes_the_ip_header_and_eight_bytes() -> None:
    err = icmp_packet(REMOTE, HOST, 3, 3, inner=udp_packet(HOST, 45124, REMOTE, 9))
    hdr, body = wire.parse_ip(wire.emit(err))
    assert (hdr.proto, body[0], body[1], len(body)) == (1, 3, 3, 8 + 20 + 8)
    assert wire.inet_checksum(body) == 0
    quoted = body[8:]
    assert (quoted[9], wire.bytes_to_ip(quoted[12:16]), wire.bytes_to_ip(quoted[16:20])) == (17, HOST, REMOTE)
    assert struct.unpack_from("!HH", quoted, 20) == (45124, 9)


def test_an_icmp_error_is_looked_up_by_the_inverse_of_what_it_quotes() -> None:
    err = icmp_packet(REMOTE, HOST, 3, 3, inner=udp_packet(HOST, 45124, REMOTE, 9))
    assert ct_tuple(err) == (17, REMOTE, HOST, 9, 45124)  # the probe's reply tuple
    echo_reply = icmp_packet(REMOTE, HOST, 0, 0, 4660, 1)
    assert ct_tuple(echo_reply) == (1, REMOTE, HOST, 4660, 0)  # id, type (icmp_nlattr_to_tuple)


# ---------------------------------------------------------------- the live kernel


@pytest.fixture(scope="module")
def testbed() -> Iterator[Testbed]:
    with Testbed() as tb:
        yield tb


@pytest.mark.kernel
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_udp_answer_sets_seen_reply_and_is_de_natted(testbed: Testbed) -> None:
    answer = {"from": "remote", "proto": "udp", "src": f"{REMOTE}:53", "dst": f"{HOST}:41000", "len": 90}
    first, second = run_case({"packets": [query(41000), answer]}, testbed)
    assert (first["proto"], first["ctstate"], first["fate"]) == ("udp", "NEW", "delivered:remote")
    assert first["delivered_as"] == {"src": f"{HOST}:41000", "dst": f"{REMOTE}:53"}
    assert "SEEN_REPLY" not in first["ct_status"] and "SRC_NAT" in first["ct_status"]
    assert (second["ctstate"], second["fate"]) == ("ESTABLISHED", "delivered:ctr")
    assert second["delivered_as"] == {"src": f"{REMOTE}:53", "dst": f"{CTR}:41000"}
    assert "SEEN_REPLY" in second["ct_status"]
    assert first["window"] is None and first["tcp_state"] is None  # no TCP tracking ran


@pytest.mark.kernel
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_udp_race_is_resolved_as_a_clash_every_time(testbed: Testbed) -> None:
    case = {"packets": [query(42000), query(42000, race="prev", delay=0)]}
    for _ in range(3):  # the hold makes the race deterministic
        held, racer = run_case(case, testbed)
        assert held["ct_stats"] == {"clash_resolve": 1} and racer["ct_stats"] == {}
        assert held["fate"] == racer["fate"] == "delivered:remote"


@pytest.mark.kernel
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_tcp_syn_race_loser_is_dropped_as_insert_failed() -> None:
    syn = {"flags": "S", "dst": f"{REMOTE}:80", "win": 29200}
    case = {
        "hosts": {"ctr2": "192.0.2.7"},
        "packets": [
            {"from": "ctr", "src": f"{CTR}:38000", "seq": 7, **syn},
            {"from": "ctr2", "src": "192.0.2.7:38000", "seq": 9, "race": "prev", "delay": 0, **syn},
        ],
    }
    held, racer = run_case(case)
    assert (held["fate"], held["ct_stats"], held["ct_status"]) == (
        "dropped:host",
        {"insert_failed": 1, "drop": 1},
        None,
    )
    assert racer["fate"] == "delivered:remote" and racer["tcp_state"] == "SYN_SENT"


@pytest.mark.kernel
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_conntrack_statistics_are_per_namespace(testbed: Testbed) -> None:
    """An ICMP error for an unknown flow counts ``error`` in its own namespace only."""
    error = {
        "from": "remote",
        "proto": "icmp",
        "src": REMOTE,
        "dst": HOST,
        "type": 3,
        "code": 3,
        "inner": {"proto": "udp", "src": f"{HOST}:41999", "dst": f"{REMOTE}:9"},
    }
    with Testbed(Topology()) as other:
        assert other.ct is not None and testbed.ct is not None
        quiet = other.ct.stats()
        assert set(quiet) >= {"found", "invalid", "insert", "insert_failed", "drop", "error", "clash_resolve"}
        (obs,) = run_case({"packets": [error]}, testbed)
        assert obs["ct_stats"] == {"error": 1} and obs["ctstate"] == "INVALID"
        assert other.ct.stats() == quiet


@pytest.mark.kernel
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_extra_remote_gets_its_own_namespace_and_the_hosts_address() -> None:
    case = {
        "hosts": {"remote2": "198.51.100.3"},
        "packets": [
            {"from": "ctr", "proto": "icmp", "src": CTR, "dst": "198.51.100.3", "type": 8, "id": 9, "seq": 1},
            {
                "from": "remote2",
                "proto": "icmp",
                "src": "198.51.100.3",
                "dst": HOST,
                "type": 0,
                "id": 9,
                "seq": 1,
            },
        ],
    }
    request, reply = run_case(case)
    assert request["fate"] == "delivered:remote2"
    assert request["delivered_as"] == {"src": HOST, "dst": "198.51.100.3", "id": 9}
    assert (reply["ctstate"], reply["fate"]) == ("ESTABLISHED", "delivered:ctr")
