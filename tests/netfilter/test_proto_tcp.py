"""tcp_in_window / nf_conntrack_tcp_packet against values worked out by hand from
net/netfilter/nf_conntrack_proto_tcp.c (newest for "6.1", the 3.x source for "3.10").

The flow in ``conn_helpers.established`` leaves (hand-derived):
  client: td_end 121001, td_maxwin 65535, td_maxend 121001 + 65535 = 186536
  server: td_end 5001,   td_maxwin 65535, td_maxend 5001 + 65535 = 70536
So for a packet from the server:
  I   seq <= 70536
  II  end > 5001 - 65535 - 1 = 4294906761 (mod 2**32)
  III sack <= 121001
  IV  sack > 121001 - max(65535, 66000) - 1 = 55000
"""

import pytest

from sim.include.nf_conntrack_tcp import TcpState
from sim.netfilter.proto_tcp import TcpAction
from sim.packet import TcpOptions
from sim.testing import Tracker

from .conn_helpers import established


def test_handshake_state_matches_hand_derivation():
    f = Tracker("6.1")
    assert f.send("c", "S", 1000).tcp_state == "SYN_SENT"
    assert f.send("s", "SA", 5000, 1001).tcp_state == "SYN_RECV"
    r = f.send("c", "A", 1001, 5001)
    assert r.tcp_state == "ESTABLISHED"
    client, server = f.ct.tcp.seen
    assert (client.td_end, client.td_maxend, client.td_maxwin) == (1001, 66536, 65535)
    assert (server.td_end, server.td_maxend, server.td_maxwin, server.td_maxack) == (5001, 70536, 65535, 1001)
    assert f.ct.assured


@pytest.mark.parametrize("profile", ["3.10", "6.1"])
def test_established_flow_state(profile):
    f = established(profile)
    client, server = f.ct.tcp.seen
    assert (client.td_end, client.td_maxend, client.td_maxwin) == (121001, 186536, 65535)
    assert (server.td_end, server.td_maxend, server.td_maxwin) == (5001, 70536, 65535)


# The article's late ACK: acknowledges 50001 after 121001 was acknowledged (bound IV).
@pytest.mark.parametrize(
    ("profile", "action", "reason", "ctinfo_kept"),
    [
        ("3.10", TcpAction.INVALID, "ACK is under the lower bound (possible overly delayed ACK)", False),
        ("6.1", TcpAction.IGNORE, "ignored ACK under lower bound 55000 (possible overly delayed)", True),
    ],
)
def test_late_ack(profile, action, reason, ctinfo_kept):
    f = established(profile)
    r = f.send("s", "A", 5001, 50001, win=187)
    assert r.window == action
    assert r.reason == reason
    assert (r.ct is not None) == ctinfo_kept
    assert r.check.failed == ["IV"]


@pytest.mark.parametrize(("sack", "passes"), [(55000, False), (55001, True), (55002, True)])
@pytest.mark.parametrize("profile", ["3.10", "6.1"])
def test_bound_iv_edge(profile, sack, passes):
    r = established(profile).send("s", "A", 5001, sack)
    assert (r.window == TcpAction.ACCEPT) == passes
    iv = r.check.bounds[3]
    assert (iv.limit, iv.value, iv.passed) == (55001, sack, passes)


@pytest.mark.parametrize(("ack", "passes"), [(121000, True), (121001, True), (121002, False)])
@pytest.mark.parametrize("profile", ["3.10", "6.1"])
def test_bound_iii_edge(profile, ack, passes):
    r = established(profile).send("s", "A", 5001, ack)
    assert (r.window == TcpAction.ACCEPT) == passes
    if not passes:
        assert r.window == TcpAction.INVALID and r.ct is None
        assert (
            r.reason
            == {
                "3.10": "ACK is over the upper bound (ACKed data not seen yet)",
                "6.1": "ACK is over upper bound 121002 (ACKed data not seen yet)",
            }[profile]
        )


@pytest.mark.parametrize(("seq", "passes"), [(70535, True), (70536, True), (70537, False)])
def test_bound_i_edge_with_data(seq, passes):
    # 1 byte of data: end = seq + 1. 6.1 only: a small overshoot is IGNOREd, td_end moves.
    f = established("6.1")
    r = f.send("s", "A", seq, 121001, length=1)
    if passes:
        assert r.window == TcpAction.ACCEPT
    else:
        # overshot = end - td_maxend + 1 = 70538 - 70536 + 1 = 3 <= receiver td_maxwin 65535
        assert (r.window, r.reason) == (TcpAction.IGNORE, "3 bytes more than expected")
        assert f.ct.tcp.seen[1].td_end == 70538


def test_bound_i_large_overshoot_is_invalid():
    r = established("6.1").send("s", "A", 5001 + 200000, 121001, length=100)
    assert (r.window, r.reason) == (
        TcpAction.INVALID,
        "SEQ is over upper bound 70537 (over the window of the receiver)",
    )
    r = established("3.10").send("s", "A", 5001 + 200000, 121001, length=100)
    assert (r.window, r.reason) == (
        TcpAction.INVALID,
        "SEQ is over the upper bound (over the window of the receiver)",
    )


def test_bound_i_small_overshoot_is_invalid_in_310():
    r = established("3.10").send("s", "A", 70537, 121001, length=1)
    assert (r.window, r.ct) == (TcpAction.INVALID, None)


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ("3.10", "SEQ is over the upper bound (over the window of the receiver)"),
        ("el7", "SEQ is over the upper bound (over the window of the receiver)"),
        ("6.1", "SEQ is over upper bound 70537 (over the window of the receiver)"),
    ],
)
def test_pure_ack_is_judged_on_its_seq(profile, reason):
    # Every profile, 3.10 included, judges a bare ACK on its own seq: 3.10.99 only substitutes
    # "seq = end = sender->td_end" for "tcph->rst && seq == 0 && state == SYN_SENT" (this test
    # used to expect ACCEPT on 3.10 from the "seq == end" shortcut of an older 3.x file).
    # 6.1: overshot = 205001 - 70536 + 1 = 134466 > receiver td_maxwin 65535 -> INVALID.
    r = established(profile).send("s", "A", 5001 + 200000, 121001)
    assert (r.window, r.reason) == (TcpAction.INVALID, reason)


@pytest.mark.parametrize(
    ("profile", "action", "reason"),
    [
        ("3.10", TcpAction.INVALID, "SEQ is under the lower bound (already ACKed data retransmitted)"),
        ("6.1", TcpAction.IGNORE, "SEQ is under lower bound 4294906761 (already ACKed data retransmitted)"),
    ],
)
def test_bound_ii(profile, action, reason):
    # end = 4294900000 + 100 = 4294900100, not after 5001 - 65535 - 1 = 4294906761
    r = established(profile).send("s", "A", 4294900000, 121001, length=100)
    assert (r.window, r.reason) == (action, reason)
    assert r.check.failed == ["II"]


def test_several_bounds_message_order():
    # Fails II and III: 3.10 names II (order I, II, III, IV); 6.1 checks III first.
    args = ("s", "A", 4294900000, 130000)
    assert established("3.10").send(*args, length=100).reason.startswith("SEQ is under the lower bound")
    assert established("6.1").send(*args, length=100).reason.startswith("ACK is over upper bound")


@pytest.mark.parametrize("profile", ["3.10", "6.1"])
def test_be_liberal_accepts_out_of_window(profile):
    f = established(profile, tcp_be_liberal=1)
    for args in [(5001, 50001, 0), (5001, 130000, 0), (5001 + 200000, 121001, 100)]:
        r = f.send("s", "A", args[0], args[1], length=args[2])
        assert (r.window, r.reason, r.ct is not None) == (TcpAction.ACCEPT, None, True)


@pytest.mark.parametrize(("profile", "reason"), [("3.10", "invalid RST"), ("6.1", "invalid rst")])
def test_rst_before_maxack_is_invalid_even_when_liberal(profile, reason):
    # client's td_maxack is 5001; a server RST with seq 5000 is before it.
    f = established(profile, tcp_be_liberal=1)
    r = f.send("s", "R", 5000)
    assert (r.window, r.reason, r.ct) == (TcpAction.INVALID, reason, None)


def test_ignore_invalid_rst_sysctl():
    f = established("6.1", tcp_ignore_invalid_rst=1)
    r = f.send("s", "R", 5000)
    assert r.window == TcpAction.ACCEPT
    with pytest.raises(ValueError, match=r"does not exist in kernel 3\.10"):
        established("3.10", tcp_ignore_invalid_rst=1)


@pytest.mark.parametrize(("profile", "state"), [("3.10", TcpState.CLOSE), ("6.1", TcpState.ESTABLISHED)])
def test_in_window_rst_not_matching_maxack(profile, state):
    # seq 5002 is in window but != td_maxack 5001: 5.10+ keeps ESTABLISHED (challenge ACK)
    f = established(profile)
    r = f.send("s", "R", 5002)
    assert r.window == TcpAction.ACCEPT
    assert f.ct.tcp.state == state


def test_exact_rst_closes_with_close_timeout():
    f = established("6.1")
    f.send("s", "R", 5001)
    assert f.ct.tcp.state == TcpState.CLOSE
    assert f.ct.timeout - f.now == 10


@pytest.mark.parametrize(
    ("profile", "reason"),
    [("3.10", "invalid state"), ("6.1", "packet (index 0) in dir 1 invalid, state ESTABLISHED")],
)
def test_syn_from_server_on_established_is_invalid(profile, reason):
    r = established(profile).send("s", "S", 9999)
    assert (r.window, r.reason) == (TcpAction.INVALID, reason)


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        # 3.10.99: "nf_ct_tcp: invalid packet ignored in state %s " (this test used to expect
        # the text without the state); 5.12+: 07b5a76e1892's "packet (index %d) ..."
        ("3.10", "invalid packet ignored in state ESTABLISHED"),
        ("6.1", "packet (index 0) in dir 0 ignored, state ESTABLISHED"),
    ],
)
def test_syn_from_client_on_established_is_ignored(profile, reason):
    f = established(profile)
    r = f.send("c", "S", 777)
    assert (r.window, r.reason, f.ct.tcp.state) == (TcpAction.IGNORE, reason, TcpState.ESTABLISHED)


@pytest.mark.parametrize("flags", ["SF", "", "SR", "FA" + "R", "F"])
def test_invalid_flag_combinations(flags):
    r = Tracker("6.1").send("c", flags, 1)
    assert (r.window, r.reason) == (TcpAction.INVALID, "invalid tcp flag combination")


def test_invalid_new_and_loose():
    # tcp_new(): tcp_conntracks[0][index][sNO] is sIV for SYN/ACK, FIN, RST
    # "invalid new" is logged from 6.7 (6ac9c51eebe8 "prefer tcp_error_log to pr_debug");
    # 3.10 .. 6.1 had only a pr_debug.
    assert Tracker("6.18").send("c", "SA", 1).reason == "invalid new"
    assert Tracker("6.1").send("c", "SA", 1).reason is None
    assert Tracker("3.10").send("c", "SA", 1).reason is None
    r = Tracker("6.18").send("c", "F" + "A", 1, 1)  # FIN+ACK from NONE -> sIV: "invalid new"
    assert (r.window, r.reason) == (TcpAction.INVALID, "invalid new")
    r = Tracker("6.1", sysctl={"tcp_loose": 0}).send("c", "A", 1, 1)
    assert (r.window, r.reason) == (TcpAction.INVALID, None)
    f = Tracker("6.1")
    r = f.send("c", "A", 1, 1)  # mid-stream pickup: both directions BE_LIBERAL
    assert r.window == TcpAction.ACCEPT and r.tcp_state == "ESTABLISHED"
    assert f.ct.timeout == 300  # ESTABLISHED without SEEN_REPLY is capped at UNACK (6.1)


def test_window_scaling_negotiated_and_applied():
    f = Tracker("6.1")
    f.send("c", "S", 1000, win=64240, options=TcpOptions(mss=1460, wscale=7, sack_perm=True))
    f.send("s", "SA", 5000, 1001, win=65160, options=TcpOptions(mss=1460, wscale=14, sack_perm=True))
    f.send("c", "A", 1001, 5001, win=502)
    client, server = f.ct.tcp.seen
    assert (client.td_scale, server.td_scale) == (7, 14)
    # server.td_maxend = 5001 + (502 << 7) = 69257
    assert server.td_maxend == 5001 + (502 << 7)


@pytest.mark.parametrize("profile", ["3.10", "6.1"])
def test_window_scaling_off_unless_both_offer(profile):
    f = Tracker(profile)
    f.send("c", "S", 1000, options=TcpOptions(mss=1460, wscale=7))
    f.send("s", "SA", 5000, 1001, options=TcpOptions(mss=1460))
    client, server = f.ct.tcp.seen
    assert (client.td_scale, server.td_scale) == (0, 0)


def test_wscale_capped_at_14():
    f = Tracker("6.1")
    f.send("c", "S", 1000, options=TcpOptions(wscale=15))
    assert f.table.entries(f.now)[0].tcp.seen[0].td_scale == 14


def test_sack_right_edge_is_checked():
    f = Tracker("6.1")
    f.send("c", "S", 1000, options=TcpOptions(sack_perm=True))
    f.send("s", "SA", 5000, 1001, options=TcpOptions(sack_perm=True))
    f.send("c", "A", 1001, 5001, length=1000)
    # SACK block right edge 3001 is beyond the client's td_end 2001: bound III on sack
    r = f.send("s", "A", 5001, 1001, options=TcpOptions(sack=((2001, 3001),)))
    assert (r.window, r.reason) == (
        TcpAction.INVALID,
        "ACK is over upper bound 2002 (ACKed data not seen yet)",
    )


def test_retransmission_counting_and_timeout():
    f = established("6.1")
    for _ in range(4):
        f.send("s", "A", 5001, 121001)
    # established() ended with this very ACK, so 4 more copies count 4 retransmissions;
    # retrans >= nf_conntrack_tcp_max_retrans (3) -> the RETRANS timeout, 300 s
    assert f.ct.tcp.retrans == 4
    assert f.ct.timeout - f.now == 300


def test_ignore_leaves_state_and_timeout():
    f = established("6.1")
    before_timeout = f.ct.timeout
    snapshot = [s.snapshot() for s in f.ct.tcp.seen]
    f.send("s", "A", 5001, 50001, dt=5.0)
    assert f.ct.timeout == before_timeout
    assert [s.snapshot() for s in f.ct.tcp.seen] == snapshot


def test_fin_sequence_to_time_wait():
    f = established("6.1")
    f.send("s", "A", 5001, 121001)
    assert f.send("c", "FA", 121001, 5001).tcp_state == "FIN_WAIT"
    assert f.send("s", "A", 5001, 121002).tcp_state == "CLOSE_WAIT"
    assert f.send("s", "FA", 5001, 121002).tcp_state == "LAST_ACK"
    assert f.send("c", "A", 121002, 5002).tcp_state == "TIME_WAIT"
    assert f.ct.timeout - f.now == 120


@pytest.mark.parametrize(("profile", "ok"), [("3.10", False), ("6.1", True)])
def test_reply_syn_in_time_wait(profile, ok):
    f = established(profile)
    f.send("c", "FA", 121001, 5001)
    f.send("s", "FA", 5001, 121002)
    f.send("c", "A", 121002, 5002)
    assert f.ct.tcp.state == TcpState.TIME_WAIT
    r = f.send("s", "S", 90000)
    assert (r.window != TcpAction.INVALID) == ok


def test_late_ack_seed_numbers_310():
    """The article's numbers: ack 530104 after 532704 was acked. With the container having
    sent up to 532704 + 70000, bound IV (lower limit td_end - 66000) fails under 3.10."""
    f = Tracker("3.10")
    f.send("c", "S", 0, win=29200)
    f.send("s", "SA", 0, 1, win=28960)
    f.send("c", "A", 1, 1, win=29200)
    seq = 1
    while seq < 532704 + 70000:
        f.send("c", "A", seq, 1, win=29200, length=1400)
        seq += 1400
        f.send("s", "A", 1, seq, win=28960)
    r = f.send("s", "A", 1, 530104, win=187)
    assert r.window == TcpAction.INVALID and r.ct is None
    assert r.reason == "ACK is under the lower bound (possible overly delayed ACK)"
