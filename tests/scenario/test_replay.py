"""Crafted-packet replay through the docker-bridge world, one test per out-of-window class.

Expected outcomes: the window numbers are worked out by hand from tcp_in_window() (see
cases.PREFIX); the fates are what the real 6.18 kernel showed (shared/KERNEL-NOTES.md,
"Behaviour seen") and what tcp_v4_send_reset() builds (RFC 793 RST rules).
"""

from __future__ import annotations

import pytest

from sim.scenario.case import CaseError
from sim.scenario.replay import replay_case

from .cases import CTR, HOST, REMOTE, back, case, out

LATE = (2001 - 66001) % 2**32
DROP_INVALID = "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP"


def last(c):
    return replay_case(c)[-1]


def test_handshake_is_translated_both_ways():
    obs = replay_case(case())
    assert [o["ctstate"] for o in obs] == ["NEW", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED"]
    assert [o["tcp_state"] for o in obs] == [
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "ESTABLISHED",
        "ESTABLISHED",
    ]
    assert obs[0]["delivered_as"] == {"src": HOST, "dst": REMOTE}
    assert obs[1]["delivered_as"] == {"src": REMOTE, "dst": CTR}
    assert all(o["window"] == "ACCEPT" and o["emitted"] == [] for o in obs)


def test_late_ack_is_ignored_and_still_translated():
    # remote td_maxwin 65160 < 66000: lower bound = 2001 - 66000 - 1 = 4294903296 (mod 2**32);
    # an ACK of exactly that is not after it
    o = last(case(back("A", 5001, LATE)))
    assert (o["ctstate"], o["window"]) == ("ESTABLISHED", "IGNORE")
    assert o["reason"] == "ignored ACK under lower bound 4294903296 (possible overly delayed)"
    assert o["fate"] == "delivered:ctr" and o["delivered_as"] == {"src": REMOTE, "dst": CTR}
    assert o["emitted"] == []


def test_late_ack_under_310_draws_the_host_rst():
    o = last(case(back("A", 5001, LATE), kernel="3.10"))
    assert (o["ctstate"], o["window"], o["fate"]) == ("INVALID", "INVALID", "local:host")
    assert o["reason"] == "ACK is under the lower bound (possible overly delayed ACK)"
    # the late ACK has ACK set: RST seq = its ack, no ACK flag
    assert o["emitted"] == [{"to": "remote", "flags": "R", "seq": LATE, "ack": 0}]


def test_ack_over_upper_bound_is_invalid_and_the_host_answers():
    o = last(case(back("A", 5001, 3001)))
    assert (o["ctstate"], o["window"], o["tcp_state"]) == ("INVALID", "INVALID", "ESTABLISHED")
    assert o["reason"] == "ACK is over upper bound 2002 (ACKed data not seen yet)"
    assert o["fate"] == "local:host" and o["delivered_as"] is None
    assert o["emitted"] == [{"to": "remote", "flags": "R", "seq": 3001, "ack": 0}]


def test_data_far_beyond_the_window():
    # remote td_maxend 5503; seq 5001 + 100000 overshoots by far more than td_maxwin 64240
    o = last(case(back("PA", 105001, 2001, 100)))
    assert o["window"] == "INVALID"
    assert o["reason"] == "SEQ is over upper bound 5504 (over the window of the receiver)"
    assert o["emitted"] == [{"to": "remote", "flags": "R", "seq": 2001, "ack": 0}]


def test_segment_without_ack_gets_rst_ack_seq_zero():
    o = last(case(back("", 105001, 0, 100)))  # no flags at all: tcp_error
    assert (o["window"], o["reason"]) == ("INVALID", "invalid tcp flag combination")
    assert o["emitted"] == [{"to": "remote", "flags": "RA", "seq": 0, "ack": 105101}]


def test_rst_far_out_of_window_gets_no_rst_back():
    o = last(case(back("R", 5001 + 500000)))
    assert (o["window"], o["fate"], o["emitted"]) == ("INVALID", "local:host", [])


def test_old_rst_from_the_container_is_forwarded_untranslated():
    # the container's RST with seq 1000 is before the remote's td_maxack 1001: "invalid rst"
    o = last(case(out("R", 1000)))
    assert (o["window"], o["reason"]) == ("INVALID", "invalid rst")
    assert o["fate"] == "delivered:remote" and o["delivered_as"] == {"src": CTR, "dst": REMOTE}


def test_syn_from_remote_on_established_entry():
    o = last(case(back("S", 90000)))
    assert (o["window"], o["reason"]) == ("INVALID", "packet (index 0) in dir 1 invalid, state ESTABLISHED")
    assert o["emitted"] == [{"to": "remote", "flags": "RA", "seq": 0, "ack": 90001}]


@pytest.mark.parametrize("probe", [back("A", 5001, 3001), back("PA", 105001, 2001, 100)])
def test_drop_invalid_rule_stops_the_rst(probe):
    o = last(case(probe, rules=[DROP_INVALID]))
    assert (o["window"], o["fate"], o["emitted"]) == ("INVALID", "dropped:host", [])


@pytest.mark.parametrize("probe", [back("A", 5001, 3001), back("PA", 105001, 2001, 100)])
def test_be_liberal_accepts_and_translates(probe):
    o = last(case(probe, sysctl={"net.netfilter.nf_conntrack_tcp_be_liberal": 1}))
    assert (o["window"], o["fate"], o["emitted"]) == ("ACCEPT", "delivered:ctr", [])


def test_be_liberal_does_not_save_an_old_rst():
    o = last(case(out("R", 1000), sysctl={"net.netfilter.nf_conntrack_tcp_be_liberal": 1}))
    assert (o["window"], o["reason"]) == ("INVALID", "invalid rst")


def test_log_invalid_writes_the_kernel_line():
    from sim.scenario.replay import run_world

    w, _ = run_world(case(back("A", 5001, 3001), sysctl={"net.netfilter.nf_conntrack_log_invalid": 6}))
    # the first line is the probe's; the host's own RST is then INVALID too ("invalid new")
    _t, line = w.namespaces["host"].log[0]
    assert line.startswith(
        "nf_ct_proto_6: ACK is over upper bound 2002 (ACKed data not seen yet) IN=eth0 OUT= MAC="
    )
    assert "SRC=198.51.100.2 DST=198.51.100.1 LEN=40 TOS=0x00 PREC=0x00 TTL=64" in line
    assert "PROTO=TCP SPT=443 DPT=40000 WINDOW=509 RES=0x00 ACK URGP=0" in line


def test_bad_case_errors_name_the_field():
    with pytest.raises(CaseError, match=r"sysctl net.ipv4.tcp_sack: not modelled"):
        replay_case(case(sysctl={"net.ipv4.tcp_sack": 0}))
    with pytest.raises(CaseError, match=r"iptables.host\[0\]"):
        replay_case(case(rules=["iptables -A INPUT --bogus"]))
    with pytest.raises(CaseError, match="kernel: kernel 'five': not a profile"):
        replay_case(case(kernel="five"))


def test_streaming_replay_reports_what_the_full_trace_shows():
    """``nflab replay`` streams (trace forgotten packet by packet, no captures); every
    observation must equal the one read off the world's full trace."""
    from sim.bench import upload_case
    from sim.scenario.replay import replay_stream, run_world

    big = upload_case(400)
    streamed = list(replay_stream(big))
    assert streamed == run_world(big)[1]
    # the generator's mix: both late ACKs (IGNORE on 6.1) and ACKs of unseen data (INVALID,
    # answered by the host's tcp_v4_send_reset with RST seq = the ACK's ack number)
    assert sum(o["window"] == "IGNORE" for o in streamed) == 3
    invalid = [o for o in streamed if o["window"] == "INVALID"]
    assert len(invalid) == 4
    assert all(o["fate"] == "local:host" and o["emitted"][0]["flags"] == "R" for o in invalid)
