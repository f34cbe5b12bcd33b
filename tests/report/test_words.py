"""sim.report.words: the window check in plain words, from explanation objects typed in by hand.

The numbers are the seed incident's late ACK under 3.10 (``nflab run seed-incident``): remote is
the sender (reply direction), receiver.td_end 1392045409, MAXACKWINDOW(remote) = 131072
(td_maxwin 1024 << 7 > 66000, nf_conntrack_proto_tcp.c), so bound IV's limit is 1391914337.
"""

from __future__ import annotations

from sim.packet import TcpFlag
from sim.report.words import bound_words, late_words, untracked_words, window_words
from sim.trace import Bound, TraceVerdict, WindowCheck


def late_ack(*, iv_passed: bool = False) -> WindowCheck:
    check = WindowCheck(
        seq=1695753999, end=1695753999, ack=1391384029, sack=1391384029, win=1024, sender_dir=1
    )
    check.bounds = [
        Bound("I", "seq <= sender.td_maxend", 1695818127, 1695753999, True),
        Bound("II", "seq + len >= sender.td_end - receiver.td_maxwin", 1695689759, 1695753999, True),
        Bound("III", "sack <= receiver.td_end", 1392045409, 1391384029, True),
        Bound("IV", "sack >= receiver.td_end - MAXACKWINDOW(sender)", 1391914337, 1391384029, iv_passed),
    ]
    check.before = (
        {"td_end": 1392045409, "td_maxend": 1392176481, "td_maxwin": 131072, "td_scale": 7},
        {"td_end": 1695753999, "td_maxend": 1695818127, "td_maxwin": 131072, "td_scale": 7},
    )
    return check


def test_bound_iv_in_words_with_the_numbers_that_matter() -> None:
    check = late_ack()
    assert bound_words(check.bounds[3], check) == (
        "this ACK acknowledges data 530,308 bytes older than the oldest ACK conntrack still accepts "
        "(at most 131,072 bytes back)"
    )


def test_verdicts_in_words() -> None:
    check = late_ack()
    invalid = window_words(check, TraceVerdict.INVALID, liberal=False)
    assert invalid[0].startswith("Out of window: this ACK") and invalid[0].endswith("(bound IV).")
    assert "INVALID" in invalid[1] and "NAT will not translate it" in invalid[1]
    assert "still translates" in window_words(check, TraceVerdict.IGNORE, liberal=False)[1]
    liberal = window_words(check, TraceVerdict.ACCEPT, liberal=True)
    assert liberal[1].startswith("be_liberal overrides the failed bound")
    assert window_words(late_ack(iv_passed=True), TraceVerdict.ACCEPT, liberal=False) == [
        "In window: all four bounds pass, and the tracker moves its window forward."
    ]


def test_other_bounds_across_the_wrap() -> None:
    check = late_ack()
    # bound I: seq 100 after td_maxend 4294967246 is 150 bytes beyond it, modulo 2**32
    over = Bound("I", "seq <= sender.td_maxend", 4294967246, 100, False)
    assert bound_words(over, check).startswith("this segment starts 150 bytes beyond")
    ahead = Bound("III", "sack <= receiver.td_end", 1000, 1500, False)
    assert bound_words(ahead, check).startswith("this ACK acknowledges 500 bytes the other side has not sent")
    old = Bound("II", "seq + len >= sender.td_end - receiver.td_maxwin", 5000, 4000, False)
    assert bound_words(old, check) == (
        "this segment ends 1,000 bytes before the oldest data conntrack still accepts (at most 131,072 "
        "bytes, the receiver's largest window, back): it repeats data acknowledged long ago"
    )


def test_untracked_rst_and_late_segment() -> None:
    assert "a RST cannot open a new connection" in untracked_words(int(TcpFlag.RST))
    assert "a [A] segment cannot open one here" in untracked_words(int(TcpFlag.ACK))
    assert late_words(0.340, 0.560, 0.020).startswith(
        "Sent at 0.340 s, it arrives at 0.560 s: 220 ms on the uplink where packets take 20 ms. "
        "The link held it back 200 ms"
    )
