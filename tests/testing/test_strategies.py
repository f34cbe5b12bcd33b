"""sim.testing's strategies: arguments checked up front, simplest first, compact parameters."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from sim.netfilter.profiles import PROFILES
from sim.packet import SEQ_MASK, TcpFlag, TcpOptions
from sim.testing import (
    Segment,
    TcpAction,
    build_conversation,
    closed_conversations,
    conversations,
    late_ack_conversations,
    perturbed_conversations,
    track_conversation,
)

A = int(TcpFlag.ACK)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: conversations(min_steps=-1), "min_steps must be >= 0, got -1"),
        (lambda: conversations(min_steps=3, max_steps=2), r"max_steps \(2\) must be >= min_steps \(3\)"),
        (lambda: conversations(max_segment=0), "max_segment must be >= 1, got 0"),
        (lambda: perturbed_conversations(max_perturbations=-1), r"max_perturbations \(-1\)"),
        (lambda: late_ack_conversations(min_segments=0), "min_segments must be >= 1, got 0"),
    ],
)
def test_arguments_are_checked_when_the_strategy_is_made(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # not drawn from: the check is up front


def test_zero_parameters_build_the_simplest_conversation() -> None:
    # ISN 0 both ways, no options offered but MSS, windows of 1: the handshake alone.
    mss = TcpOptions(mss=1460)
    handshake = (
        Segment("c", int(TcpFlag.SYN), 0, 0, 1, 0, mss),
        Segment("s", int(TcpFlag.SYN | TcpFlag.ACK), 0, 1, 1, 0, mss),
        Segment("c", A, 1, 1, 1),
    )
    conv = build_conversation(0, 0, b"")
    assert conv.segments == handshake and (conv.wscale_c, conv.wscale_s) == (None, None)
    # a slot starting with 0 is no step; one starting with 1 is the simplest: a client pure ACK
    slots = bytes([0, 9, 9, 9, 9]) + bytes([1, 0, 0, 0, 0]) + bytes([1, 0, 0, 0, 0])
    assert build_conversation(0, 0, bytes(9) + slots).segments == (
        *handshake,
        *[Segment("c", A, 1, 1, 1)] * 2,
    )


def test_window_scaling_only_when_both_offer_it() -> None:
    # header bytes: wscale client (kind 1: 0x04 -> scale 1), wscale server (0 -> none)
    one_sided = build_conversation(0, 0, bytes([4, 0]))
    assert (one_sided.wscale_c, one_sided.wscale_s) == (1, None)
    # scale 15 is offered as is (the kernel caps it at 14: TCP_MAX_WSCALE)
    both = build_conversation(0, 0, bytes([2, 4]))
    assert both.segments[0].options.wscale == 15 and both.segments[1].options.wscale == 1


def test_data_never_exceeds_the_window_the_peer_advertised() -> None:
    # a full-segment step (kind 1) from the client while the server's SYN window is 1000
    params = bytes([0, 0, 0, 0, 0, 0x03, 0xE7, 0, 0]) + bytes([0x03, 0, 0, 0, 0])
    conv = build_conversation(SEQ_MASK, 7, params)
    data = conv.segments[3]
    assert (data.frm, data.seq, data.length) == ("c", 0, 1000)  # ISN 2**32-1: seq wraps to 0


@given(conversations(min_steps=2, max_steps=4, options=False))
def test_min_max_steps_and_no_options(conv) -> None:
    assert 3 + 2 <= len(conv.segments) <= 3 + 4
    assert all(seg.options == TcpOptions() for seg in conv.segments)


@pytest.mark.parametrize("seed", range(3))
def test_failures_shrink_to_the_steps_they_need(seed: int) -> None:
    config = settings(database=None, max_examples=500, suppress_health_check=list(HealthCheck))
    conv = find(
        conversations(),
        lambda c: any(s.length for s in c.segments if s.frm == "s"),
        settings=config,
        random=Random(seed),
    )
    assert len(conv.segments) == 4 and conv.segments[3].frm == "s" and conv.segments[3].length > 0
    assert (conv.isn_c, conv.isn_s) == (0, 0)


@given(closed_conversations(max_steps=8), st.sampled_from(list(PROFILES)))
def test_a_closed_conversation_ends_in_time_wait_or_close(conv, profile) -> None:
    # tcp_conntracks[]: fin sES -> sFW, peer's ack sFW -> sCW, peer's fin sCW -> sLA, last ack
    # sLA -> sTW; a RST in window -> sCL. Every segment of an orderly close is in the window.
    results = track_conversation(conv, kernel=profile)
    assert all(r.window is TcpAction.ACCEPT for r in results), [r.reason for r in results]
    if conv.segments[-1].flags & TcpFlag.RST:
        assert results[-1].tcp_state == "CLOSE"
    else:
        assert [r.tcp_state for r in results[-4:]] == ["FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT"]
