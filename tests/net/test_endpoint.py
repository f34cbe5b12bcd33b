"""sim.net.endpoint: two endpoints back to back through a deterministic test channel.

Expected values are worked out by hand from the RFCs and Linux's documented defaults:
RFC 6298 §2 (first RTO 1 s, RTO = SRTT + 4 * RTTVAR, floored at Linux's 200 ms, doubled per
timeout), RFC 7323 (window scale, the 12-byte timestamp option), RFC 5961 (RSTs), RFC 793
(old duplicate ACKs), and ip-sysctl.rst (tcp_syn_retries = 6 gives up after 127 s,
tcp_retries2 = 15 after 924.6 s).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.net.endpoint import (
    AbortReason,
    EndpointOptions,
    EndpointState,
    Role,
    TcpEndpoint,
)
from sim.packet import SEQ_MASK, TCPHDR_ACK, TCPHDR_PSH, TCPHDR_RST, TCPHDR_SYN, Packet, TcpOptions

CTR = ("172.17.0.2", 39700)
REMOTE = ("36.110.213.207", 443)
CLIENT_ISN = 1_000_000
SERVER_ISN = 3_000_000_000
DELAY = 0.010  # one way, so every RTT sample is 20 ms


def never(sender: str, n: int, pkt: Packet) -> bool:
    return False


@dataclass(slots=True)
class Sent:
    """One segment handed to the channel."""

    time: float
    sender: str
    pkt: Packet
    dropped: bool


@dataclass
class Channel:
    """A link with a fixed one-way delay between a client and a server endpoint.

    ``drop(sender, n, pkt)`` decides the loss of the ``n``-th segment (from 0) that ``sender``
    sends. Events are (time, sequence, ...) in a heap; at equal times timers run before
    arrivals, the client's before the server's.
    """

    client: TcpEndpoint
    server: TcpEndpoint
    drop: Callable[[str, int, Packet], bool] = never
    app: Callable[[Channel], None] = lambda channel: None
    now: float = 0.0
    log: list[Sent] = field(default_factory=list)
    _heap: list[tuple[float, int, str, Packet]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)
    _counts: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})

    def endpoint(self, name: str) -> TcpEndpoint:
        return self.client if name == "client" else self.server

    def transmit(self, sender: str, pkts: list[Packet]) -> None:
        receiver = "server" if sender == "client" else "client"
        for pkt in pkts:
            n = self._counts[sender]
            self._counts[sender] = n + 1
            dropped = self.drop(sender, n, pkt)
            self.log.append(Sent(self.now, sender, pkt, dropped))
            if not dropped:
                heapq.heappush(self._heap, (self.now + DELAY, next(self._order), receiver, pkt))

    def run(self, until: float = math.inf, max_events: int = 100_000) -> None:
        """Step until nothing is pending, ``until`` passes, or ``max_events`` (a hang) is hit."""
        for _ in range(max_events):
            timers = [
                (d, name) for name in ("client", "server") if (d := self.endpoint(name).next_deadline())
            ]
            first_timer = min(timers, default=(math.inf, ""))
            first_arrival = self._heap[0][0] if self._heap else math.inf
            t = min(first_timer[0], first_arrival)
            if t == math.inf or t > until:
                return
            self.now = t
            if first_timer[0] <= first_arrival:
                self.transmit(first_timer[1], self.endpoint(first_timer[1]).poll(t))
            else:
                _, _, receiver, pkt = heapq.heappop(self._heap)
                self.transmit(receiver, self.endpoint(receiver).receive(pkt, t))
            self.app(self)
        raise AssertionError(f"no quiescence after {max_events} events: the endpoints hang")

    def sent(self, sender: str, *, data_only: bool = False) -> list[Sent]:
        return [s for s in self.log if s.sender == sender and (s.pkt.payload_len or not data_only)]


def make_pair(
    client_options: EndpointOptions | None = None,
    server_options: EndpointOptions | None = None,
    client_isn: int = CLIENT_ISN,
) -> tuple[TcpEndpoint, TcpEndpoint]:
    client = TcpEndpoint(
        CTR,
        REMOTE,
        Role.CLIENT,
        isn=client_isn,
        rng=random.Random(1),
        options=client_options or EndpointOptions(),
    )
    server = TcpEndpoint(
        REMOTE,
        CTR,
        Role.SERVER,
        isn=SERVER_ISN,
        rng=random.Random(2),
        options=server_options or EndpointOptions(),
    )
    return client, server


def upload(
    nbytes: int,
    drop: Callable[[str, int, Packet], bool] = never,
    app: Callable[[Channel], None] = lambda channel: None,
) -> Channel:
    """A channel whose client has queued ``nbytes`` and sent its SYN at t = 0."""
    client, server = make_pair()
    channel = Channel(client, server, drop, app)
    channel.transmit("client", client.connect(0.0))
    client.send(nbytes)
    return channel


def established_pair() -> tuple[TcpEndpoint, TcpEndpoint]:
    """Handshake by hand at t = 0, 0.01, 0.02; the client then has 3000 bytes in flight."""
    client, server = make_pair()
    (syn,) = client.connect(0.0)
    (synack,) = server.receive(syn, 0.01)
    client.send(3000)
    assert len(client.receive(synack, 0.02)) == 3
    return client, server


# ---------------------------------------------------------------- handshake


def test_handshake_negotiates_mss_wscale_sack_and_timestamps() -> None:
    client, server = make_pair(server_options=EndpointOptions(mss=1400, wscale=9))
    (syn,) = client.connect(0.0)
    assert syn.flags == TCPHDR_SYN and syn.seq == CLIENT_ISN
    assert syn.window == 64240  # Linux's SYN window: 44 * 1460, never scaled (RFC 7323 §2.2)
    assert (syn.options.mss, syn.options.wscale, syn.options.sack_perm) == (1460, 7, True)
    assert syn.options.ts is not None and syn.options.ts[1] == 0

    (synack,) = server.receive(syn, 0.01)
    assert synack.flags == TCPHDR_SYN | TCPHDR_ACK
    assert (synack.seq, synack.ack) == (SERVER_ISN, CLIENT_ISN + 1)
    assert (synack.options.mss, synack.options.wscale, synack.options.sack_perm) == (1400, 9, True)
    assert synack.options.ts is not None and synack.options.ts[1] == syn.options.ts[0]
    assert server.state is EndpointState.SYN_RECEIVED

    (ack,) = client.receive(synack, 0.02)
    assert ack.flags == TCPHDR_ACK and (ack.seq, ack.ack) == (CLIENT_ISN + 1, SERVER_ISN + 1)
    assert ack.window == 501  # 64240 >> 7, tcpdump's familiar "win 501"
    assert ack.options == TcpOptions(ts=ack.options.ts) and ack.options.ts is not None
    assert ack.options.ts[1] == synack.options.ts[0]
    assert server.receive(ack, 0.03) == []

    for end in (client, server):
        assert end.state is EndpointState.ESTABLISHED
        assert end.mss == 1400 - 12  # smaller MSS less the aligned timestamp option
        assert end.sack_ok and end.timestamps_ok
    assert (client.snd_wscale, client.rcv_wscale) == (9, 7)
    assert (server.snd_wscale, server.rcv_wscale) == (7, 9)


def test_options_the_client_does_not_offer_are_not_used() -> None:
    plain = EndpointOptions(wscale=None, sack_perm=False, timestamps=False)
    client, server = make_pair(client_options=plain)
    (syn,) = client.connect(0.0)
    assert syn.options == TcpOptions(mss=1460)
    (synack,) = server.receive(syn, 0.01)
    assert synack.options == TcpOptions(mss=1460)  # a SYN/ACK only echoes what the SYN offered
    (ack,) = client.receive(synack, 0.02)
    assert ack.window == 64240 and ack.options == TcpOptions()
    assert client.mss == server.mss == 1460
    assert (server.snd_wscale, server.rcv_wscale, server.sack_ok, server.timestamps_ok) == (
        0,
        0,
        False,
        False,
    )


def test_syn_without_mss_option_means_536() -> None:
    _, server = make_pair()
    syn = Packet(
        src=CTR[0], dst=REMOTE[0], sport=CTR[1], dport=REMOTE[1], seq=7, flags=TCPHDR_SYN, window=512
    )
    (synack,) = server.receive(syn, 0.0)
    assert synack.ack == 8 and synack.options.mss == 1460
    assert server.mss == 536  # RFC 1122 §4.2.2.6 default send MSS


def test_listener_answers_a_stray_ack_with_rst_and_a_rst_with_nothing() -> None:
    _, server = make_pair()
    stray = Packet(src=CTR[0], dst=REMOTE[0], sport=CTR[1], dport=REMOTE[1], seq=5, ack=77, flags=TCPHDR_ACK)
    (rst,) = server.receive(stray, 0.0)
    assert (rst.flags, rst.seq) == (TCPHDR_RST, 77)  # RFC 793: <SEQ=SEG.ACK><CTL=RST>
    assert server.receive(replace(stray, flags=TCPHDR_RST), 0.0) == []
    assert server.state is EndpointState.LISTEN


# ---------------------------------------------------------------- data transfer


def test_two_megabyte_upload_completes() -> None:
    client, server = make_pair(client_isn=SEQ_MASK - 10_000)  # the sequence space wraps mid-upload
    channel = Channel(client, server)
    channel.transmit("client", client.connect(0.0))
    client.send(2_000_000)
    channel.run()
    assert client.bytes_acked == 2_000_000
    assert server.bytes_received == 2_000_000
    assert client.retransmissions == 0
    data = channel.sent("client", data_only=True)
    assert len(data) == math.ceil(2_000_000 / 1448)  # 1382 segments of at most 1460 - 12 bytes
    assert max(s.pkt.payload_len for s in data) == 1448
    assert data[-1].pkt.flags == TCPHDR_ACK | TCPHDR_PSH and data[-1].pkt.payload_len == 2_000_000 % 1448
    assert client.next_deadline() is None and server.next_deadline() is None


def test_initial_window_is_ten_segments() -> None:
    channel = upload(100_000)
    channel.run(until=0.025)
    # The SYN/ACK arrives at 0.02: RFC 6928's ten segments leave at once, no more.
    assert [s.time for s in channel.sent("client", data_only=True)] == [0.02] * 10


def test_receiver_acks_every_second_segment_and_delays_a_lone_one() -> None:
    channel = upload(3 * 1448)
    channel.run()
    acks = [s for s in channel.sent("server") if s.pkt.flags == TCPHDR_ACK]
    # Segments 1-3 arrive at 0.03: the second is ACKed at once, the third after 40 ms.
    assert [(s.time, s.pkt.ack - CLIENT_ISN - 1) for s in acks] == [
        (0.03, 2 * 1448),
        (pytest.approx(0.07), 3 * 1448),
    ]


def test_out_of_order_data_is_held_and_acked_at_once() -> None:
    client, server = make_pair()
    (syn,) = client.connect(0.0)
    (synack,) = server.receive(syn, 0.01)
    client.send(3000)
    first, second, _ = client.receive(synack, 0.02)
    # The hole makes the receiver ACK at once with the old RCV.NXT (RFC 5681 §4.2) ...
    (dup,) = server.receive(second, 0.03)
    assert dup.ack == CLIENT_ISN + 1 and server.bytes_received == 0
    # ... and the segment that fills it is ACKed at once, together with the held one.
    (ack,) = server.receive(first, 0.031)
    assert ack.ack == CLIENT_ISN + 1 + 2 * 1448 and server.bytes_received == 2 * 1448


def test_fin_close_both_ways() -> None:
    def app(channel: Channel) -> None:
        if channel.client.state is EndpointState.ESTABLISHED:
            channel.transmit("client", channel.client.close(channel.now))
        if channel.server.state is EndpointState.CLOSE_WAIT:
            channel.transmit("server", channel.server.close(channel.now))

    channel = upload(10_000, app=app)
    channel.run(until=0.045)
    assert channel.client.state is EndpointState.TIME_WAIT  # FIN sent at 0.02, peer's FIN at 0.04
    assert channel.server.state is EndpointState.LAST_ACK
    channel.run()
    assert channel.server.state is EndpointState.CLOSED
    assert channel.client.state is EndpointState.CLOSED
    assert channel.now == pytest.approx(0.04 + 60.0)  # TIME-WAIT lasts TCP_TIMEWAIT_LEN
    assert channel.client.aborted_reason is None and channel.server.aborted_reason is None
    assert channel.server.bytes_received == 10_000 and channel.client.bytes_acked == 10_000


# ---------------------------------------------------------------- retransmission


def test_rto_doubles_from_the_200_ms_floor() -> None:
    # Everything the client sends after its SYN is lost. The SYN/ACK gives one RTT sample of
    # 20 ms: SRTT = 0.02, RTTVAR = 0.01, RTO = 0.02 + 4 * 0.01 = 0.06 -> floored to 0.2 s.
    channel = upload(1000, drop=lambda sender, n, pkt: sender == "client" and n >= 1)
    channel.run(until=0.02)
    assert channel.client.rto == pytest.approx(0.2)
    channel.run(until=7.0)
    times = [s.time for s in channel.sent("client", data_only=True)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == pytest.approx(0.02)
    assert gaps == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2])
    assert channel.client.retransmissions == 5
    assert {(s.pkt.seq, s.pkt.payload_len) for s in channel.sent("client", data_only=True)} == {
        (CLIENT_ISN + 1, 1000)
    }


def test_lost_syns_mean_one_segment_window_and_3_s_rto() -> None:
    # The first three SYNs and the first data segment are lost. SYNs leave at 0, 1, 3, 7
    # (RFC 6298 §2.1, §5.5); with no RTT sample (Karn) the RTO restarts at 3 s (§5.7) and the
    # first window is one segment (RFC 5681 §3.1).
    channel = upload(10 * 1448, drop=lambda sender, n, pkt: sender == "client" and n in (0, 1, 2, 4))
    channel.run(until=11.0)
    syn_times = [s.time for s in channel.sent("client") if s.pkt.flags & TCPHDR_SYN]
    assert syn_times == pytest.approx([0.0, 1.0, 3.0, 7.0])
    data = channel.sent("client", data_only=True)
    assert [s.time for s in data[:2]] == pytest.approx([7.02, 10.02])
    assert data[0].pkt.seq == data[1].pkt.seq == CLIENT_ISN + 1


def test_unanswered_syn_gives_up_after_127_s() -> None:
    client, _ = make_pair()
    syn_times = [0.0] if client.connect(0.0) else []
    now = 0.0
    while (deadline := client.next_deadline()) is not None:
        now = deadline
        syn_times += [now] * len(client.poll(now))
    # ip-sysctl.rst: tcp_syn_retries = 6 means 127 s with the 1 s initial RTO.
    assert syn_times == [0, 1, 3, 7, 15, 31, 63]
    assert now == 127
    assert client.state is EndpointState.CLOSED
    assert client.aborted_reason == "too many retransmissions"
    assert client.retransmissions == 6


@pytest.mark.parametrize(
    ("retries2", "budget"),
    [
        (3, 0.2 + 0.4 + 0.8 + 1.6),
        # 0.2 * (2**10 - 1) for the first ten, then six times TCP_RTO_MAX: ip-sysctl's 924.6 s.
        (15, 204.6 + 6 * 120.0),
    ],
)
def test_silent_peer_aborts_after_retries2(retries2: int, budget: float) -> None:
    client, server = make_pair(client_options=EndpointOptions(retries2=retries2))
    channel = Channel(client, server, drop=lambda sender, n, pkt: sender == "server" and n >= 1)
    channel.transmit("client", client.connect(0.0))
    client.send(5000)
    channel.run()
    assert client.state is EndpointState.CLOSED
    assert client.aborted_reason is AbortReason.TOO_MANY_RETRANSMISSIONS
    assert channel.now == pytest.approx(0.02 + budget)  # the data left with the handshake's ACK
    assert client.retransmissions == retries2


# ---------------------------------------------------------------- RSTs (RFC 5961 §3.2)


def rst(seq: int) -> Packet:
    return Packet(src=REMOTE[0], dst=CTR[0], sport=REMOTE[1], dport=CTR[1], seq=seq, flags=TCPHDR_RST)


def test_rst_at_rcv_nxt_aborts() -> None:
    client, _ = established_pair()
    assert client.receive(rst(SERVER_ISN + 1), 0.03) == []
    assert client.state is EndpointState.CLOSED
    assert client.aborted_reason == "reset by peer"
    assert client.next_deadline() is None


def test_in_window_rst_draws_a_challenge_ack() -> None:
    client, _ = established_pair()
    (challenge,) = client.receive(rst(SERVER_ISN + 1 + 100), 0.03)
    assert challenge.flags == TCPHDR_ACK
    assert (challenge.seq, challenge.ack, challenge.payload_len) == (CLIENT_ISN + 1 + 3000, SERVER_ISN + 1, 0)
    assert client.state is EndpointState.ESTABLISHED and client.aborted_reason is None


@pytest.mark.parametrize("offset", [-1, 501 << 7, 1 << 31])
def test_rst_outside_the_window_is_ignored(offset: int) -> None:
    # The window last advertised is 501 << 7 = 64128 bytes: RCV.NXT + 64128 is just outside.
    client, _ = established_pair()
    assert client.rcv_wnd == 64128
    assert client.receive(rst((SERVER_ISN + 1 + offset) & SEQ_MASK), 0.03) == []
    assert client.state is EndpointState.ESTABLISHED


def test_rst_answering_our_syn_is_refused_and_never_answered() -> None:
    client, _ = make_pair()
    client.connect(0.0)
    refusal = Packet(
        src=REMOTE[0],
        dst=CTR[0],
        sport=REMOTE[1],
        dport=CTR[1],
        ack=CLIENT_ISN + 1,
        flags=TCPHDR_RST | TCPHDR_ACK,
    )
    assert client.receive(refusal, 0.02) == []
    assert client.aborted_reason is AbortReason.REFUSED


# ---------------------------------------------------------------- ACK checks


def ack_from_server(ack: int, window: int = 501, seq: int = SERVER_ISN + 1) -> Packet:
    return Packet(
        src=REMOTE[0],
        dst=CTR[0],
        sport=REMOTE[1],
        dport=CTR[1],
        seq=seq,
        ack=ack,
        flags=TCPHDR_ACK,
        window=window,
    )


def test_old_duplicate_ack_is_ignored() -> None:
    # As in the incident: an ACK of 530104 after one of 532704 (2600 bytes older).
    client, _ = established_pair()
    client.receive(ack_from_server(CLIENT_ISN + 1 + 2800), 0.04)
    assert client.bytes_acked == 2800
    before = (client.snd_una, client.snd_nxt, client.cwnd, client.next_deadline())
    assert client.receive(ack_from_server(CLIENT_ISN + 1 + 200, window=3), 0.05) == []
    assert (client.snd_una, client.snd_nxt, client.cwnd, client.next_deadline()) == before
    assert client.bytes_acked == 2800 and client.state is EndpointState.ESTABLISHED


def test_ack_of_unsent_data_is_answered_with_an_ack() -> None:
    client, _ = established_pair()
    (reply,) = client.receive(ack_from_server(CLIENT_ISN + 1 + 9999), 0.04)
    assert reply.flags == TCPHDR_ACK and reply.ack == SERVER_ISN + 1
    assert client.bytes_acked == 0


def test_segment_outside_the_receive_window_is_answered_with_an_ack() -> None:
    client, _ = established_pair()
    far = Packet(
        src=REMOTE[0],
        dst=CTR[0],
        sport=REMOTE[1],
        dport=CTR[1],
        seq=SERVER_ISN + 1 + 100_000,
        ack=CLIENT_ISN + 1,
        flags=TCPHDR_ACK,
        window=501,
        payload_len=100,
    )
    (reply,) = client.receive(far, 0.04)
    assert reply.flags == TCPHDR_ACK and reply.ack == SERVER_ISN + 1
    assert client.bytes_received == 0


def test_three_duplicate_acks_trigger_fast_retransmit() -> None:
    # The first ACK changes the window (64240 unscaled in the SYN/ACK, 501 << 7 now), so
    # it is no duplicate by RFC 5681 §2's definition; the three after it are.
    client, _ = established_pair()
    outputs = [client.receive(ack_from_server(CLIENT_ISN + 1), 0.04 + i / 1000) for i in range(4)]
    assert outputs[:3] == [[], [], []]
    (resent,) = outputs[3]
    assert (resent.seq, resent.payload_len) == (CLIENT_ISN + 1, 1448)
    assert client.retransmissions == 1


# ---------------------------------------------------------------- property


@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    loss=st.floats(min_value=0.0, max_value=0.7),
    nbytes=st.integers(min_value=1, max_value=60_000),
)
def test_lossy_upload_completes_or_aborts(seed: int, loss: float, nbytes: int) -> None:
    rng = random.Random(seed)

    def app(channel: Channel) -> None:
        if channel.client.state is EndpointState.ESTABLISHED and channel.client.bytes_acked == nbytes:
            channel.transmit("client", channel.client.close(channel.now))
        if channel.server.state is EndpointState.CLOSE_WAIT:
            channel.transmit("server", channel.server.close(channel.now))

    channel = upload(nbytes, drop=lambda sender, n, pkt: rng.random() < loss, app=app)
    channel.run()  # raises if the endpoints never go quiet
    client, server = channel.client, channel.server
    assert client.bytes_acked <= server.bytes_received <= nbytes
    if client.aborted_reason is None:
        assert client.bytes_acked == server.bytes_received == nbytes
        assert client.state is EndpointState.CLOSED
    else:
        assert client.state is EndpointState.CLOSED
        assert client.aborted_reason is AbortReason.TOO_MANY_RETRANSMISSIONS
