"""sim.testing's driver: a conversation through one conntrack table, per-segment results.

Expected values are typed in from net/netfilter/nf_conntrack_proto_tcp.c (cited per test) and
follow the hand-derived arithmetic of sim/scenario/cases/late-ack.json.
"""

from __future__ import annotations

import pytest

from sim.packet import TcpFlag, TcpOptions
from sim.testing import Conversation, Segment, TcpAction, Tracker, track_conversation

A, S, SA = int(TcpFlag.ACK), int(TcpFlag.SYN), int(TcpFlag.SYN | TcpFlag.ACK)
SYN_OPTS = TcpOptions(mss=1460, wscale=7, sack_perm=True)
# sim/scenario/cases/late-ack.json without timestamps: after it, client td_end 1001001; the server's
# MAXACKWINDOW is max(td_maxwin 65160, MAXACKWINCONST 66000) = 66000.
LATE_ACK = (
    Segment("c", S, 1000000, 0, 64240, 0, SYN_OPTS),
    Segment("s", SA, 5000000, 1000001, 65160, 0, SYN_OPTS),
    Segment("c", A, 1000001, 5000001, 502),
    Segment("c", A, 1000001, 5000001, 502, 1000),
    Segment("s", A, 5000001, 1001001, 509),
    Segment("s", A, 5000001, 931001, 509),  # 70000 bytes late
)


def test_handshake_states_and_ctstates() -> None:
    # tcp_conntracks[]: ORIGINAL syn sNO -> sSS, REPLY synack sSS -> sSR, ORIGINAL ack sSR -> sES
    results = track_conversation(LATE_ACK[:3], kernel="6.1")
    assert [r.tcp_state for r in results] == ["SYN_SENT", "SYN_RECV", "ESTABLISHED"]
    assert [r.ctstate for r in results] == ["NEW", "ESTABLISHED", "ESTABLISHED"]
    assert all(r.window is TcpAction.ACCEPT and r.reason is None for r in results)


def test_late_ack_is_ignored_on_61_with_bound_iv_and_its_numbers() -> None:
    # 6.1 tcp_in_window(): "ignored ACK under lower bound %u (possible overly delayed)" with
    # receiver->td_end - MAXACKWINDOW(sender) - 1 = 1001001 - 66000 - 1 = 935000
    late = track_conversation(Conversation(LATE_ACK, 1000000, 5000000, 7, 7), kernel="6.1")[-1]
    assert late.window is TcpAction.IGNORE
    assert late.reason == "ignored ACK under lower bound 935000 (possible overly delayed)"
    assert late.failed == ("IV",)
    # the explanation states bound IV as "sack >= limit": after(sack, 935000) <=> sack >= 935001
    iv = late.bounds[3]
    assert (iv.name, iv.rule) == ("IV", "sack >= receiver.td_end - MAXACKWINDOW(sender)")
    assert (iv.limit, iv.value, iv.passed) == (935001, 931001, False)
    assert late.ct is not None and late.ctstate == "ESTABLISHED" and late.tcp_state == "ESTABLISHED"


def test_late_ack_is_invalid_on_310_and_be_liberal_accepts_it() -> None:
    # 3.10: one combined bounds test, failure -> "ACK is under the lower bound (possible
    # overly delayed ACK)" and -NF_ACCEPT; with nf_conntrack_tcp_be_liberal the failure is
    # not reported and the packet is accepted.
    late = track_conversation(LATE_ACK, kernel="3.10")[-1]
    assert (late.window, late.reason) == (
        TcpAction.INVALID,
        "ACK is under the lower bound (possible overly delayed ACK)",
    )
    assert late.ct is None and late.ctstate == "INVALID" and late.tcp_state == "ESTABLISHED"
    for key in ("tcp_be_liberal", "net.netfilter.nf_conntrack_tcp_be_liberal"):
        liberal = track_conversation(LATE_ACK, kernel="3.10", sysctl={key: 1})[-1]
        assert (liberal.window, liberal.reason, liberal.ctstate) == (TcpAction.ACCEPT, None, "ESTABLISHED")


def test_tracker_one_segment_at_a_time_matches_track_conversation() -> None:
    t = Tracker("6.1")
    one_by_one = [t.feed(seg) for seg in LATE_ACK]
    whole = track_conversation(LATE_ACK, kernel="6.1")
    assert [(r.window, r.reason, r.tcp_state) for r in one_by_one] == [
        (r.window, r.reason, r.tcp_state) for r in whole
    ]
    assert t.ct.tcp.seen[0].td_end == 1001001  # 1000001 + 1000 bytes


def test_send_spells_flags_as_letters_and_time_moves() -> None:
    t = Tracker("6.1")
    assert t.send("c", "S", 1000, win=64240).tcp_state == "SYN_SENT"
    t.send("s", "SA", 5000, 1001, dt=0.5)
    assert t.now == 0.5
    # a SYN/ACK entry in SYN_RECV expires after tcp_timeouts[SYN_RECV] = 60 s
    assert t.ct.timeout == pytest.approx(60.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kernel": "nope"}, "kernel 'nope': not a profile"),
        ({"sysctl": {"tcp_be_generous": 1}}, "unknown sysctl tcp_be_generous"),
        ({"kernel": "3.10", "sysctl": {"tcp_ignore_invalid_rst": 1}}, "does not exist in kernel 3.10"),
    ],
)
def test_bad_kernel_or_sysctl_is_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        track_conversation(LATE_ACK, **kwargs)
    assert "\n" not in str(info.value)


def test_unknown_sender_is_one_line() -> None:
    with pytest.raises(ValueError, match="sender must be 'c' or 's', not 'x'"):
        Tracker().feed(Segment("x", S, 1, 0, 1))
