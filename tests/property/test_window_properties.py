"""Invariants of the TCP tracker, fuzzed with sim.testing.strategies."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sim.packet import SEQ_MASK
from sim.testing import (
    TcpAction,
    Tracker,
    conversations,
    late_ack_conversations,
    perturbed_conversations,
    track_conversation,
)

PROFILES = st.sampled_from(["3.10", "6.1"])


@given(conversations(), PROFILES)
def test_well_formed_conversation_is_never_invalid_or_ignored(conv, profile):
    for res in track_conversation(conv, kernel=profile):
        assert res.window == TcpAction.ACCEPT, (res.segment, res.reason)


@given(conversations(), st.integers(0, SEQ_MASK), PROFILES)
def test_verdicts_invariant_under_sequence_shift(conv, offset, profile):
    a = track_conversation(conv, kernel=profile)
    b = track_conversation(conv.shifted(offset), kernel=profile)
    assert [(r.window, r.ctinfo) for r in a] == [(r.window, r.ctinfo) for r in b]


@given(perturbed_conversations(), PROFILES)
def test_perturbed_verdicts_invariant_under_sequence_shift(case, profile):
    conv, _ = case
    offset = 0x9E3779B9
    a = track_conversation(conv, kernel=profile)
    b = track_conversation(conv.shifted(offset), kernel=profile)
    assert [(r.window, r.ctinfo) for r in a] == [(r.window, r.ctinfo) for r in b]


# Reasons be_liberal cannot turn into ACCEPT: the RST check, the state table's sIV,
# tcp_error() and tcp_new() refusals.
LIBERAL_PROOF = (
    "invalid rst",
    "invalid RST",
    "invalid state",
    "invalid new",
    "invalid tcp flag",
    "invalid TCP flag",
    "packet (index",
)


@given(perturbed_conversations(), PROFILES)
def test_be_liberal_leaves_only_rst_and_state_table_invalid(case, profile):
    conv, done = case
    for res in track_conversation(conv, kernel=profile, sysctl={"tcp_be_liberal": 1}):
        if res.window == TcpAction.INVALID:
            assert res.reason is None or res.reason.startswith(LIBERAL_PROOF), (done, res.reason)
            assert res.check is None or not res.reason or "bound" not in res.reason


@given(perturbed_conversations(), PROFILES)
def test_ignore_changes_neither_state_nor_timeout(case, profile):
    conv, _ = case
    tracker = Tracker(profile)
    for seg in conv.segments:
        src, dst = (tracker.client, tracker.server) if seg.frm == "c" else (tracker.server, tracker.client)
        hit = tracker.table.find((*src, *dst, 6), tracker.now + 1)  # IPPROTO_TCP
        before = None
        if hit is not None:
            ct = hit[0]
            before = (ct.tcp.state, ct.timeout, [d.snapshot() for d in ct.tcp.seen])
        res = tracker.feed(seg, dt=1.0)
        if res.window == TcpAction.IGNORE and before is not None:
            ct = hit[0]
            after = (ct.tcp.state, ct.timeout, [d.snapshot() for d in ct.tcp.seen])
            assert after[:2] == before[:2], res.reason
            # tcp_in_window() changes the window data before an IGNORE only when it first
            # initialises the sender ("td_maxwin == 0": a direction seen for the first time)
            # or for "%u bytes more than expected", which sets td_end.
            sender = before[2][hit[1]]
            if sender["td_maxwin"] and "bytes more than expected" not in res.reason:
                assert after[2] == before[2], res.reason


@given(late_ack_conversations())
def test_article_late_ack_is_invalid_in_310_and_ignored_in_61(case):
    conv, index = case
    old = track_conversation(conv, kernel="3.10")
    new = track_conversation(conv, kernel="6.1")
    assert all(r.window == TcpAction.ACCEPT for r in old[:index])
    assert (old[index].window, old[index].reason) == (
        TcpAction.INVALID,
        "ACK is under the lower bound (possible overly delayed ACK)",
    )
    assert new[index].window == TcpAction.IGNORE
    assert new[index].reason.startswith("ignored ACK under lower bound")
    assert new[index].ct is not None and old[index].ct is None
