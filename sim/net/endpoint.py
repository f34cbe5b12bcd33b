"""TCP endpoints for workloads (net/ipv4/tcp_input.c, tcp_output.c, tcp_timer.c).

Enough TCP to replay the seed incident's timeline: a three-way handshake with options, sending
limited by the peer's window and a Reno congestion window, cumulative and delayed ACKs,
retransmission with exponential backoff until the connection gives up, and RFC 5961's
handling of RSTs. Built like smoltcp: no I/O and no clock. Time is passed in and the segments
to send are returned; the engine carries them and calls :meth:`TcpEndpoint.poll` when
:meth:`TcpEndpoint.next_deadline` comes due. Payload bytes are not modelled, only their
lengths and sequence numbers (ints in ``[0, 2**32)``, compared with ``before``/``after``).

Constants carry the kernel's names (include/net/tcp.h) and Linux's sysctl defaults
(Documentation/networking/ip-sysctl.rst).

Not modelled: SACK blocks (SACK-permitted is negotiated, no blocks are sent or read), PAWS
(RFC 7323 §5), RTT measurement from timestamps (Karn's algorithm times one segment at a
time), the persist timer (our receivers read at once, so windows never close), simultaneous
open, a passive open returning to LISTEN after a RST (it ends CLOSED), challenge-ACK rate
limits (RFC 5961 §7), urgent data, and Linux's quick-ACK mode.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum, StrEnum

from sim.net.reno import Reno
from sim.net.rtt import RttEstimator
from sim.packet import (
    NO_OPTIONS,
    SEQ_MASK,
    TCP_MAX_WSCALE,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_PSH,
    TCPHDR_SYN,
    Packet,
    TcpOptions,
    after,
    before,
    rst_reply,
)

TCP_DELACK_MIN = 0.04  # delayed-ACK timer (HZ/25)
TCP_TIMEWAIT_LEN = 60.0  # TIME-WAIT lasts 60 s on Linux (RFC 793's 2*MSL would be 4 min)
TCP_FIN_TIMEOUT = 60.0  # net.ipv4.tcp_fin_timeout: how long a closed socket waits in FIN-WAIT-2
TCP_INIT_CWND = 10  # initial window in segments, RFC 6928
TCP_MSS_DEFAULT = 536  # send MSS when the peer's SYN has no MSS option, RFC 1122 §4.2.2.6
TCP_MIN_MSS = 88
TCPOLEN_TSTAMP_ALIGNED = 12  # NOP NOP TIMESTAMP, taken from the MSS of every segment
TCP_RETRIES2 = 15  # net.ipv4.tcp_retries2
TCP_SYN_RETRIES = 6  # net.ipv4.tcp_syn_retries
TCP_SYNACK_RETRIES = 5  # net.ipv4.tcp_synack_retries
MAX_TCP_WINDOW = 65535  # the 16-bit window field
MS_PER_S = 1000  # TSval clock rate (RFC 7323 §5.4: 1 ms, as Linux uses)


class Role(Enum):
    """Who opens: the client connects (active OPEN), the server listens (passive OPEN)."""

    CLIENT = "client"
    SERVER = "server"


class EndpointState(Enum):
    """Connection states, RFC 793 §3.2 (the kernel's ``TCP_*`` socket states)."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"


class AbortReason(StrEnum):
    """Why a connection ended without a close (the errno the application would see)."""

    RESET_BY_PEER = "reset by peer"  # ECONNRESET
    REFUSED = "connection refused"  # ECONNREFUSED: RST answering our SYN
    TOO_MANY_RETRANSMISSIONS = "too many retransmissions"  # ETIMEDOUT


# States whose segment text is delivered (RFC 793 §3.9, "seventh, process the segment text").
_RECEIVING_STATES = frozenset({EndpointState.ESTABLISHED, EndpointState.FIN_WAIT_1, EndpointState.FIN_WAIT_2})
# States that may (re)send data or a FIN.
_SENDING_STATES = frozenset(
    {
        EndpointState.ESTABLISHED,
        EndpointState.CLOSE_WAIT,
        EndpointState.FIN_WAIT_1,
        EndpointState.CLOSING,
        EndpointState.LAST_ACK,
    }
)
# close() moves these to the next state and queues a FIN (RFC 793 §3.9 CLOSE call).
_CLOSE_TRANSITIONS = {
    EndpointState.ESTABLISHED: EndpointState.FIN_WAIT_1,
    EndpointState.CLOSE_WAIT: EndpointState.LAST_ACK,
}
# Our FIN acknowledged (RFC 793 §3.9, "fifth, check the ACK field").
_FIN_ACKED_TRANSITIONS = {
    EndpointState.FIN_WAIT_1: EndpointState.FIN_WAIT_2,
    EndpointState.CLOSING: EndpointState.TIME_WAIT,
    EndpointState.LAST_ACK: EndpointState.CLOSED,
}
# The peer's FIN received (RFC 793 §3.9, "eighth, check the FIN bit").
_FIN_RECEIVED_TRANSITIONS = {
    EndpointState.ESTABLISHED: EndpointState.CLOSE_WAIT,
    EndpointState.FIN_WAIT_1: EndpointState.CLOSING,
    EndpointState.FIN_WAIT_2: EndpointState.TIME_WAIT,
}


@dataclass(frozen=True, slots=True)
class EndpointOptions:
    """What an endpoint offers and how patient it is; defaults are Linux's on a 1500-byte MTU.

    ``wscale`` ``None`` sends no window-scale option (RFC 7323 §2); 7 is what Linux derives
    from the default ``tcp_rmem`` maximum. ``rcv_wnd`` is the initial receive window (Linux
    offers 64240 = 44 * 1460 in its SYN); it grows by two segments per in-order segment
    received, as ``tcp_grow_window`` does, up to ``rcv_buf`` (``tcp_rmem[1]``).
    ``init_cwnd`` is in segments. The retry counts bound how many retransmissions happen
    before the connection is given up (RFC 1122 §4.2.3.5 R2).
    """

    mss: int = 1460
    wscale: int | None = 7
    sack_perm: bool = True
    timestamps: bool = True
    rcv_wnd: int = 64240
    rcv_buf: int = 131072
    init_cwnd: int = TCP_INIT_CWND
    retries2: int = TCP_RETRIES2
    syn_retries: int = TCP_SYN_RETRIES
    synack_retries: int = TCP_SYNACK_RETRIES

    def __post_init__(self) -> None:
        if not TCP_MIN_MSS <= self.mss <= MAX_TCP_WINDOW:
            raise ValueError(f"mss {self.mss} outside [{TCP_MIN_MSS}, {MAX_TCP_WINDOW}]")
        if self.wscale is not None and not 0 <= self.wscale <= TCP_MAX_WSCALE:
            raise ValueError(f"wscale {self.wscale} outside [0, {TCP_MAX_WSCALE}] (RFC 7323 §2.3)")
        if not 0 < self.rcv_wnd <= self.rcv_buf:
            raise ValueError(f"need 0 < rcv_wnd ({self.rcv_wnd}) <= rcv_buf ({self.rcv_buf})")
        if self.init_cwnd < 1:
            raise ValueError(f"init_cwnd {self.init_cwnd} must be at least one segment")
        if min(self.retries2, self.syn_retries, self.synack_retries) < 0:
            raise ValueError("retry counts must not be negative")


DEFAULT_OPTIONS = EndpointOptions()


class TcpEndpoint:
    """One end of one TCP connection, driven by :meth:`receive` and :meth:`poll`.

    A client starts CLOSED and :meth:`connect` sends its SYN; a server starts in LISTEN and
    accepts the first SYN it is given, adopting that SYN's source as its remote (as
    ``accept()`` does). Queue application bytes with :meth:`send`; they leave on the next
    :meth:`receive` or :meth:`poll`. The endpoint never answers a RST with a RST, and a CLOSED
    endpoint is silent: answering segments for which there is no connection is the socket
    layer's job (``tcp_v4_send_reset``).
    """

    __slots__ = (
        "_aborted_reason",
        "_ack_now",
        "_backoff",
        "_bytes_acked",
        "_bytes_received",
        "_close_deadline",
        "_data_end",
        "_delack_deadline",
        "_fin_queued",
        "_ip_id",
        "_irs",
        "_iss",
        "_max_snd_wnd",
        "_mss",
        "_ooo",
        "_queued",
        "_rcv_nxt",
        "_rcv_space",
        "_rcv_wnd",
        "_rcv_wscale",
        "_rcv_wup",
        "_reno",
        "_retransmissions",
        "_rto_deadline",
        "_rtt",
        "_rtt_seq",
        "_rtt_start",
        "_sack_ok",
        "_snd_max",
        "_snd_nxt",
        "_snd_una",
        "_snd_wl1",
        "_snd_wl2",
        "_snd_wnd",
        "_snd_wscale",
        "_state",
        "_ts_offset",
        "_ts_ok",
        "_ts_recent",
        "_ws_ok",
        "local",
        "options",
        "remote",
        "role",
    )

    def __init__(
        self,
        local: tuple[str, int],
        remote: tuple[str, int],
        role: Role,
        *,
        isn: int,
        rng: random.Random,
        options: EndpointOptions = DEFAULT_OPTIONS,
    ) -> None:
        """``isn`` is the initial send sequence number (RFC 793 §3.3); ``rng`` draws the
        per-connection TSval offset and the first IP ID, as Linux randomises both."""
        if not 0 <= isn <= SEQ_MASK:
            raise ValueError(f"isn {isn} outside [0, 2**32)")
        self.local = local
        self.remote = remote
        self.role = role
        self.options = options
        self._state = EndpointState.LISTEN if role is Role.SERVER else EndpointState.CLOSED
        self._aborted_reason: AbortReason | None = None
        # Send sequence space (RFC 793 §3.2); snd_max is the highest seq ever sent.
        self._iss = isn
        self._snd_una = self._snd_nxt = self._snd_max = isn
        self._snd_wnd = self._max_snd_wnd = self._snd_wl1 = self._snd_wl2 = 0
        self._queued = 0
        self._data_end = (isn + 1) & SEQ_MASK
        self._fin_queued = False
        self._bytes_acked = 0
        self._mss = TCP_MSS_DEFAULT
        # Receive sequence space.
        self._irs = self._rcv_nxt = self._rcv_wup = 0
        self._rcv_space = options.rcv_wnd
        self._rcv_wnd = 0
        self._ooo: list[tuple[int, int]] = []
        self._bytes_received = 0
        # Options: what we offer until the peer's SYN narrows it to what both sides sent.
        self._ws_ok = options.wscale is not None
        self._sack_ok = options.sack_perm
        self._ts_ok = options.timestamps
        self._snd_wscale = self._rcv_wscale = 0
        self._ts_offset = rng.getrandbits(32)
        self._ts_recent = 0
        self._ip_id = rng.getrandbits(16)
        # Congestion control (RFC 5681) and timers (RFC 6298).
        self._reno = Reno(options.init_cwnd * TCP_MSS_DEFAULT)
        self._rtt = RttEstimator()
        self._rto_deadline: float | None = None
        self._backoff = 0
        self._rtt_seq: int | None = None
        self._rtt_start = 0.0
        self._retransmissions = 0
        self._ack_now = False
        self._delack_deadline: float | None = None
        self._close_deadline: float | None = None

    # ------------------------------------------------------------------ read-only state

    @property
    def state(self) -> EndpointState:
        return self._state

    @property
    def aborted_reason(self) -> AbortReason | None:
        """Set when the connection ended by RST or by giving up; None after a clean close."""
        return self._aborted_reason

    @property
    def bytes_acked(self) -> int:
        """Application bytes the peer has acknowledged."""
        return self._bytes_acked

    @property
    def bytes_received(self) -> int:
        """Application bytes received in order (what ``read()`` would have returned)."""
        return self._bytes_received

    @property
    def retransmissions(self) -> int:
        """Segments sent again (SYN, data or FIN), like Linux's ``total_retrans``."""
        return self._retransmissions

    @property
    def mss(self) -> int:
        """Payload bytes per full segment: the smaller MSS less the timestamp option."""
        return self._mss

    @property
    def snd_wscale(self) -> int:
        """The shift applied to the peer's window field (0 unless both sides sent wscale)."""
        return self._snd_wscale

    @property
    def rcv_wscale(self) -> int:
        """The shift our window fields are scaled by."""
        return self._rcv_wscale

    @property
    def sack_ok(self) -> bool:
        return self._sack_ok

    @property
    def timestamps_ok(self) -> bool:
        return self._ts_ok

    @property
    def rto(self) -> float:
        return self._rtt.rto

    @property
    def cwnd(self) -> int:
        return self._reno.cwnd

    @property
    def snd_una(self) -> int:
        return self._snd_una

    @property
    def snd_nxt(self) -> int:
        return self._snd_nxt

    @property
    def rcv_nxt(self) -> int:
        return self._rcv_nxt

    @property
    def rcv_wnd(self) -> int:
        """The receive window last advertised, in bytes (scaled)."""
        return self._rcv_wnd

    # ------------------------------------------------------------------ user calls

    def connect(self, now: float) -> list[Packet]:
        """Active OPEN (RFC 793 §3.9): send a SYN and enter SYN-SENT."""
        if self.role is not Role.CLIENT or self._snd_max != self._iss:
            raise ValueError("connect() needs a client endpoint that has not connected yet")
        self._state = EndpointState.SYN_SENT
        out: list[Packet] = []
        self._emit_syn(now, out)
        return out

    def send(self, data_len: int) -> None:
        """Queue ``data_len`` application bytes (RFC 793 §3.9 SEND); the next
        :meth:`receive` or :meth:`poll` transmits what the windows allow."""
        if data_len < 0:
            raise ValueError(f"data_len {data_len} is negative")
        if self._fin_queued or self._state not in (
            EndpointState.LISTEN,
            EndpointState.SYN_SENT,
            EndpointState.SYN_RECEIVED,
            EndpointState.ESTABLISHED,
            EndpointState.CLOSE_WAIT,
        ):
            raise ValueError(f"send() in {self._state.value} after close: connection closing")
        self._queued += data_len
        self._data_end = (self._iss + 1 + self._queued) & SEQ_MASK

    def close(self, now: float) -> list[Packet]:
        """CLOSE call (RFC 793 §3.9): a FIN follows the queued data.

        Before the handshake completes a client simply forgets the connection; a server in
        SYN-RECEIVED sends its FIN once established. Closing twice is a no-op.
        """
        out: list[Packet] = []
        if self._state in (EndpointState.LISTEN, EndpointState.SYN_SENT):
            self._drop_connection(None)
            return out
        if self._fin_queued or self._state not in (*_CLOSE_TRANSITIONS, EndpointState.SYN_RECEIVED):
            return out
        self._fin_queued = True
        if self._state in _CLOSE_TRANSITIONS:
            self._state = _CLOSE_TRANSITIONS[self._state]
        self._output(now, out)
        return out

    def receive(self, pkt: Packet, now: float) -> list[Packet]:
        """Process one arriving segment (RFC 793 §3.9 SEGMENT ARRIVES); return the answer."""
        out: list[Packet] = []
        state = self._state
        if state is EndpointState.CLOSED:
            return out
        if state is EndpointState.LISTEN:
            self._on_listen(pkt, now, out)
        elif state is EndpointState.SYN_SENT:
            self._on_syn_sent(pkt, now, out)
        else:
            self._on_synchronized(pkt, now, out)
        self._output(now, out)
        return out

    def poll(self, now: float) -> list[Packet]:
        """Run the timers that are due at ``now`` and send what is ready to go."""
        out: list[Packet] = []
        if self._delack_deadline is not None and self._delack_deadline <= now:
            self._delack_deadline = None
            self._ack_now = True
        if self._rto_deadline is not None and self._rto_deadline <= now:
            self._on_retransmit_timeout(now, out)
        if self._close_deadline is not None and self._close_deadline <= now:
            self._drop_connection(None)
        self._output(now, out)
        return out

    def next_deadline(self) -> float | None:
        """The earliest pending timer (retransmission, delayed ACK, FIN-WAIT-2/TIME-WAIT), or None."""
        deadlines = [
            d for d in (self._rto_deadline, self._delack_deadline, self._close_deadline) if d is not None
        ]
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ arrivals by state

    def _on_listen(self, pkt: Packet, now: float, out: list[Packet]) -> None:
        """LISTEN (RFC 793 §3.9): a RST is ignored, an ACK draws a RST, a SYN a SYN/ACK."""
        if pkt.rst:
            return
        if pkt.ack_flag:
            out.append(rst_reply(pkt))
            return
        if not pkt.syn:
            return
        self.remote = (pkt.src, pkt.sport)
        self._accept_syn(pkt)
        self._state = EndpointState.SYN_RECEIVED
        self._emit_syn(now, out)

    def _on_syn_sent(self, pkt: Packet, now: float, out: list[Packet]) -> None:
        """SYN-SENT (RFC 793 §3.9; RFC 5961 §3.2 keeps its RST rule): only a SYN/ACK
        acknowledging our SYN establishes; a RST counts only if its ACK is acceptable."""
        ack_ok = pkt.ack_flag and pkt.ack == self._snd_nxt
        if pkt.ack_flag and not ack_ok:
            if not pkt.rst:
                out.append(rst_reply(pkt))
            return
        if pkt.rst:
            if ack_ok:
                self._drop_connection(AbortReason.REFUSED)
            return
        if not (pkt.syn and ack_ok):
            return  # a bare SYN would be a simultaneous open: not modelled
        self._accept_syn(pkt)
        self._on_new_ack(pkt.ack, now)
        self._establish()
        self._ack_now = True

    def _on_synchronized(self, pkt: Packet, now: float, out: list[Packet]) -> None:
        """SYN-RECEIVED and later (RFC 793 §3.9 steps one to eight, with RFC 5961)."""
        if pkt.rst:
            self._on_rst(pkt.seq)
            return
        if self._state is EndpointState.SYN_RECEIVED and pkt.syn and pkt.seq == self._irs:
            self._emit_syn(now, out)  # our SYN/ACK was lost: answer the SYN again (tcp_check_req)
            return
        if not self._seq_acceptable(pkt.seq, (pkt.end_seq - pkt.seq) & SEQ_MASK):
            self._ack_now = True  # RFC 793: an unacceptable segment is answered with an ACK
            return
        if pkt.syn:
            self._ack_now = True  # RFC 5961 §4.2: challenge ACK for a SYN in a synchronized state
            return
        if not pkt.ack_flag or not self._on_ack(pkt, now, out):
            return
        if self._ts_ok and pkt.options.ts is not None:
            self._update_ts_recent(pkt.seq, pkt.options.ts[0])
        if self._state in _RECEIVING_STATES:
            self._on_text(pkt, now)

    def _on_rst(self, seq: int) -> None:
        """RFC 5961 §3.2: a RST at exactly RCV.NXT resets the connection; one elsewhere in
        the window draws a challenge ACK; one outside the window is dropped silently."""
        if seq == self._rcv_nxt:
            # In TIME-WAIT the application has already closed: the RST only ends the wait
            # (Linux's default, net.ipv4.tcp_rfc1337 = 0).
            timewait = self._state is EndpointState.TIME_WAIT
            self._drop_connection(None if timewait else AbortReason.RESET_BY_PEER)
        elif self._in_window(seq):
            self._ack_now = True

    # ------------------------------------------------------------------ handshake

    def _accept_syn(self, pkt: Packet) -> None:
        """Take the peer's ISN and options from its SYN (RFC 793 §3.3, RFC 7323 §2, §3).

        An option is in use only if both SYNs carry it; the MSS we send is the smaller of
        the two offers (the peer's absent offer means 536) less the timestamp option's
        12 bytes; the SYN's window is never scaled (RFC 7323 §2.2).
        """
        opts = pkt.options
        self._irs = pkt.seq
        self._rcv_nxt = self._rcv_wup = (pkt.seq + 1) & SEQ_MASK
        self._ws_ok = self._ws_ok and opts.wscale is not None
        self._sack_ok = self._sack_ok and opts.sack_perm
        self._ts_ok = self._ts_ok and opts.ts is not None
        if self._ws_ok and opts.wscale is not None and self.options.wscale is not None:
            self._snd_wscale = min(opts.wscale, TCP_MAX_WSCALE)
            self._rcv_wscale = self.options.wscale
        if self._ts_ok and opts.ts is not None:
            self._ts_recent = opts.ts[0]
        peer_mss = opts.mss if opts.mss is not None else TCP_MSS_DEFAULT
        self._mss = min(peer_mss, self.options.mss) - (TCPOLEN_TSTAMP_ALIGNED if self._ts_ok else 0)
        self._snd_wnd = self._max_snd_wnd = pkt.window
        self._snd_wl1, self._snd_wl2 = pkt.seq, pkt.ack

    def _establish(self) -> None:
        """Enter ESTABLISHED (or FIN-WAIT-1 if close() came first) and set the first windows.

        The initial window is ``init_cwnd`` segments (RFC 6928), but one segment if the SYN
        or SYN/ACK had to be retransmitted (RFC 5681 §3.1); then no RTT sample exists
        (Karn) and the RTO becomes 3 s (RFC 6298 §5.7, ``TCP_TIMEOUT_FALLBACK``).
        """
        self._state = EndpointState.FIN_WAIT_1 if self._fin_queued else EndpointState.ESTABLISHED
        if self._retransmissions:
            self._reno.cwnd = self._mss
            self._rtt.fall_back()
        else:
            self._reno.cwnd = self.options.init_cwnd * self._mss

    def _emit_syn(self, now: float, out: list[Packet]) -> None:
        """Send (or resend) our SYN, or SYN/ACK in SYN-RECEIVED, with our options."""
        if self._snd_max == self._iss:
            self._snd_nxt = self._snd_max = (self._iss + 1) & SEQ_MASK
            self._rtt_seq, self._rtt_start = self._snd_max, now
        else:
            self._count_retransmission()
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rtt.rto
        flags = TCPHDR_SYN | (TCPHDR_ACK if self._state is EndpointState.SYN_RECEIVED else 0)
        out.append(self._segment(now, self._iss, flags))

    # ------------------------------------------------------------------ ACK processing

    def _on_ack(self, pkt: Packet, now: float, out: list[Packet]) -> bool:
        """RFC 793 §3.9 "fifth, check the ACK field", with RFC 5961 §5.2. False drops the segment.

        An ACK for data not yet sent, or older than SND.UNA by more than the largest window
        the peer ever offered, is answered with an ACK and dropped. An old duplicate ACK
        (below SND.UNA) is ignored but the segment's text is still processed.
        """
        ack = pkt.ack
        if self._state is EndpointState.SYN_RECEIVED:
            if not after(ack, self._snd_una) or after(ack, self._snd_max):
                out.append(rst_reply(pkt))
                return False
            self._on_new_ack(ack, now)  # our SYN/ACK acknowledged: the passive open completes
            self._establish()
        if after(ack, self._snd_max) or before(ack, (self._snd_una - self._max_snd_wnd) & SEQ_MASK):
            self._ack_now = True
            return False
        if before(ack, self._snd_una):
            return True
        window = pkt.window << self._snd_wscale
        if ack == self._snd_una:
            if self._is_duplicate_ack(pkt, window):
                flight = (self._snd_max - self._snd_una) & SEQ_MASK
                if self._reno.on_duplicate_ack(self._mss, flight):
                    self._retransmit_head(now, out)
        else:
            self._on_new_ack(ack, now)
        self._update_send_window(pkt.seq, ack, window)
        return True

    def _is_duplicate_ack(self, pkt: Packet, window: int) -> bool:
        """RFC 5681 §2's DUPLICATE ACKNOWLEDGMENT: data outstanding, no payload, no SYN or
        FIN, the same ACK and the same window. Linux does not count them while recovering
        from a timeout (the Loss state of ``tcp_fastretrans_alert``)."""
        return (
            self._snd_una != self._snd_max
            and self._snd_nxt == self._snd_max
            and pkt.payload_len == 0
            and not pkt.flags & (TCPHDR_SYN | TCPHDR_FIN)
            and window == self._snd_wnd
        )

    def _update_send_window(self, seq: int, ack: int, window: int) -> None:
        """Take the window from the newest segment only (RFC 793 §3.9, SND.WL1/SND.WL2)."""
        if before(self._snd_wl1, seq) or (self._snd_wl1 == seq and not before(ack, self._snd_wl2)):
            self._snd_wnd = window
            self._snd_wl1, self._snd_wl2 = seq, ack
            self._max_snd_wnd = max(self._max_snd_wnd, window)

    def _on_new_ack(self, ack: int, now: float) -> None:
        """Advance SND.UNA: sample the RTT, open cwnd, and rearm or stop the timer
        (RFC 6298 §5.2, §5.3; a new ACK also clears the backoff)."""
        self._snd_una = ack
        if after(ack, self._snd_nxt):
            self._snd_nxt = ack  # an ACK for segments sent before a go-back-N retransmission
        newly_acked = min((ack - self._iss - 1) & SEQ_MASK, self._queued) - self._bytes_acked
        self._bytes_acked += newly_acked
        self._backoff = 0
        if self._rtt_seq is not None and not before(ack, self._rtt_seq):
            self._rtt_seq = None
            self._rtt.sample(now - self._rtt_start)
        self._reno.on_new_ack(newly_acked, self._mss)
        self._rto_deadline = None if ack == self._snd_max else now + self._rtt.rto
        if self._fin_queued and ack == self._snd_max and after(ack, self._data_end):
            self._on_fin_acked(now)

    def _on_fin_acked(self, now: float) -> None:
        """Our FIN is acknowledged. FIN-WAIT-2 waits at most ``tcp_fin_timeout`` for the
        peer's FIN, as Linux does for a socket the application has closed."""
        self._state = _FIN_ACKED_TRANSITIONS.get(self._state, self._state)
        if self._state is EndpointState.FIN_WAIT_2:
            self._close_deadline = now + TCP_FIN_TIMEOUT
        elif self._state is EndpointState.TIME_WAIT:
            self._enter_time_wait(now)
        elif self._state is EndpointState.CLOSED:
            self._drop_connection(None)

    # ------------------------------------------------------------------ receiving text

    def _seq_acceptable(self, seq: int, length: int) -> bool:
        """RFC 793 §3.3's four cases of segment acceptability against RCV.NXT and RCV.WND."""
        if self._rcv_wnd == 0:
            return length == 0 and seq == self._rcv_nxt
        if length == 0:
            return self._in_window(seq)
        return self._in_window(seq) or self._in_window((seq + length - 1) & SEQ_MASK)

    def _in_window(self, seq: int) -> bool:
        """RCV.NXT =< seq < RCV.NXT + RCV.WND."""
        return not before(seq, self._rcv_nxt) and before(seq, (self._rcv_nxt + self._rcv_wnd) & SEQ_MASK)

    def _update_ts_recent(self, seq: int, tsval: int) -> None:
        """RFC 7323 §4.3: keep the TSval of the segment that covers Last.ACK.sent."""
        if not after(seq, self._rcv_wup) and not before(tsval, self._ts_recent):
            self._ts_recent = tsval

    def _on_text(self, pkt: Packet, now: float) -> None:
        """Seventh and eighth steps (RFC 793 §3.9): take the data, then an in-order FIN."""
        if pkt.payload_len:
            self._on_data(pkt.seq, pkt.payload_len, now)
        if pkt.fin and (pkt.seq + pkt.payload_len) & SEQ_MASK == self._rcv_nxt:
            self._on_fin(now)

    def _on_data(self, seq: int, length: int, now: float) -> None:
        """Deliver in-order data, hold data beyond a hole, and decide when to ACK.

        Old bytes at the front are trimmed (RFC 793 §3.9). Out-of-order data, and data that
        fills a hole, is acknowledged at once (RFC 5681 §4.2); in-order data as delayed ACK.
        """
        if before(seq, self._rcv_nxt):
            trim = (self._rcv_nxt - seq) & SEQ_MASK
            if trim >= length:
                return
            seq, length = self._rcv_nxt, length - trim
        end = (seq + length) & SEQ_MASK
        if seq != self._rcv_nxt:
            self._hold_out_of_order(seq, end)
            self._ack_now = True
            return
        self._advance_rcv_nxt(end)
        if self._ooo:
            self._ack_now = True
            while self._ooo and not after(self._ooo[0][0], self._rcv_nxt):
                _, held_end = self._ooo.pop(0)
                if after(held_end, self._rcv_nxt):
                    self._advance_rcv_nxt(held_end)
        self._schedule_ack(now)

    def _advance_rcv_nxt(self, end: int) -> None:
        """Deliver up to ``end`` and grow the window by two segments (``tcp_grow_window``)."""
        self._bytes_received += (end - self._rcv_nxt) & SEQ_MASK
        self._rcv_nxt = end
        self._rcv_space = min(self._rcv_space + 2 * self._mss, self.options.rcv_buf)

    def _hold_out_of_order(self, seq: int, end: int) -> None:
        """Keep [seq, end) in the out-of-order queue, sorted and merged."""
        base = self._rcv_nxt
        held = sorted([*self._ooo, (seq, end)], key=lambda r: (r[0] - base) & SEQ_MASK)
        merged = [held[0]]
        for start, stop in held[1:]:
            last_start, last_stop = merged[-1]
            if after(start, last_stop):
                merged.append((start, stop))
            elif after(stop, last_stop):
                merged[-1] = (last_start, stop)
        self._ooo = merged

    def _schedule_ack(self, now: float) -> None:
        """ACK at once when more than one full segment is unacknowledged (RFC 5681 §4.2,
        Linux ``__tcp_ack_snd_check``), otherwise within ``TCP_DELACK_MIN``."""
        if (self._rcv_nxt - self._rcv_wup) & SEQ_MASK > self._mss:
            self._ack_now = True
        elif self._delack_deadline is None:
            self._delack_deadline = now + TCP_DELACK_MIN

    def _on_fin(self, now: float) -> None:
        """The peer's FIN: it takes one sequence number and is acknowledged at once."""
        self._rcv_nxt = (self._rcv_nxt + 1) & SEQ_MASK
        self._ack_now = True
        self._state = _FIN_RECEIVED_TRANSITIONS.get(self._state, self._state)
        if self._state is EndpointState.TIME_WAIT:
            self._enter_time_wait(now)

    # ------------------------------------------------------------------ sending

    def _output(self, now: float, out: list[Packet]) -> None:
        """Send what the windows allow, then a bare ACK if one is owed and none rode along."""
        if self._state in _SENDING_STATES:
            self._send_data(now, out)
        if self._ack_now:
            out.append(self._segment(now, self._snd_nxt, TCPHDR_ACK))

    def _send_data(self, now: float, out: list[Packet]) -> None:
        """Send from SND.NXT within min(peer window, cwnd) (RFC 793 §3.7, RFC 5681 §3.1).

        A segment shorter than the MSS goes only if it ends the queued data or fills half
        the largest window the peer offered (sender SWS avoidance, RFC 1122 §4.2.3.4). A
        FIN rides on the last segment, or goes alone once the data is sent.
        """
        mss, data_end = self._mss, self._data_end
        while not after(self._snd_nxt, data_end):
            nxt = self._snd_nxt
            remaining = (data_end - nxt) & SEQ_MASK
            if remaining:
                usable = min(self._snd_wnd, self._reno.cwnd) - ((nxt - self._snd_una) & SEQ_MASK)
                length = min(mss, remaining, usable)
                if length <= 0 or (length < mss and length < remaining and length < self._max_snd_wnd // 2):
                    return
            elif self._fin_queued:
                length = 0
            else:
                return
            self._snd_nxt = self._emit(now, out, nxt, length, self._fin_queued and length == remaining)

    def _retransmit_head(self, now: float, out: list[Packet]) -> None:
        """Resend the first unacknowledged segment (RFC 5681 §3.2 step 2)."""
        if after(self._snd_una, self._data_end):
            return  # only our FIN is outstanding: the timer resends it
        remaining = (self._data_end - self._snd_una) & SEQ_MASK
        length = min(self._mss, remaining)
        self._emit(now, out, self._snd_una, length, self._fin_queued and length == remaining)

    def _emit(self, now: float, out: list[Packet], seq: int, length: int, fin: bool) -> int:
        """Send [seq, seq+length) (+FIN) and return its end; start the timer if idle
        (RFC 6298 §5.1) and time the segment if nothing is being timed (Karn)."""
        end = (seq + length + fin) & SEQ_MASK
        if before(seq, self._snd_max):
            self._count_retransmission()
        elif self._rtt_seq is None:
            self._rtt_seq, self._rtt_start = end, now
        if after(end, self._snd_max):
            self._snd_max = end
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rtt.rto
        flags = TCPHDR_ACK | (TCPHDR_FIN if fin else 0)
        if length and (seq + length) & SEQ_MASK == self._data_end:
            flags |= TCPHDR_PSH  # the end of what the application wrote (tcp_push)
        out.append(self._segment(now, seq, flags, length))
        return end

    def _count_retransmission(self) -> None:
        """A segment goes out again: count it and stop timing (Karn's algorithm, RFC 6298 §3)."""
        self._retransmissions += 1
        self._rtt_seq = None

    def _segment(self, now: float, seq: int, flags: int, length: int = 0) -> Packet:
        """Build one segment; an ACK in it settles any ACK we owed."""
        ack = 0
        if flags & TCPHDR_ACK:
            ack = self._rcv_wup = self._rcv_nxt
            self._ack_now = False
            self._delack_deadline = None
        if flags & TCPHDR_SYN:
            window = min(self._rcv_space, MAX_TCP_WINDOW)  # never scaled (RFC 7323 §2.2)
            self._rcv_wnd = window
            options = self._syn_options(now)
        else:
            window = min(self._rcv_space >> self._rcv_wscale, MAX_TCP_WINDOW)
            self._rcv_wnd = window << self._rcv_wscale
            options = TcpOptions(ts=(self._tsval(now), self._ts_recent)) if self._ts_ok else NO_OPTIONS
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return Packet(
            src=self.local[0],
            dst=self.remote[0],
            sport=self.local[1],
            dport=self.remote[1],
            seq=seq,
            ack=ack,
            flags=flags,
            window=window,
            payload_len=length,
            options=options,
            ip_id=self._ip_id,
        )

    def _syn_options(self, now: float) -> TcpOptions:
        """A SYN offers everything configured; a SYN/ACK only what the SYN offered."""
        return TcpOptions(
            mss=self.options.mss,
            wscale=self.options.wscale if self._ws_ok else None,
            sack_perm=self._sack_ok,
            ts=(self._tsval(now), self._ts_recent) if self._ts_ok else None,
        )

    def _tsval(self, now: float) -> int:
        """A millisecond clock plus a random per-connection offset (RFC 7323 §5.4, Linux 4.10+)."""
        return (int(now * MS_PER_S) + self._ts_offset) & SEQ_MASK

    # ------------------------------------------------------------------ timers

    def _on_retransmit_timeout(self, now: float, out: list[Packet]) -> None:
        """RTO expiry (RFC 6298 §5.4-5.6): give up after the configured retries (RFC 1122
        §4.2.3.5), else double the RTO, collapse cwnd to one segment (RFC 5681 §3.1; ssthresh
        halves only on the first timeout) and go back to SND.UNA, as Linux's
        ``tcp_enter_loss`` marks every outstanding segment lost when there is no SACK."""
        if self._backoff >= self._retry_limit():
            self._drop_connection(AbortReason.TOO_MANY_RETRANSMISSIONS)
            return
        self._backoff += 1
        self._rtt.back_off()
        self._rto_deadline = now + self._rtt.rto
        if self._state in (EndpointState.SYN_SENT, EndpointState.SYN_RECEIVED):
            self._emit_syn(now, out)
            return
        self._reno.on_timeout(self._backoff == 1, self._mss, (self._snd_max - self._snd_una) & SEQ_MASK)
        self._snd_nxt = self._snd_una
        self._send_data(now, out)

    def _retry_limit(self) -> int:
        """``tcp_syn_retries``, ``tcp_synack_retries`` or ``tcp_retries2`` by state.

        Linux turns ``tcp_retries2`` into a time budget computed as if the RTO started at
        200 ms (``tcp_model_timeout``: 924.6 s for 15); counting retransmissions gives the
        same budget from that RTO.
        """
        if self._state is EndpointState.SYN_SENT:
            return self.options.syn_retries
        if self._state is EndpointState.SYN_RECEIVED:
            return self.options.synack_retries
        return self.options.retries2

    def _enter_time_wait(self, now: float) -> None:
        """TIME-WAIT (RFC 793 §3.5): linger to re-ACK a retransmitted FIN, then close."""
        self._rto_deadline = None
        self._close_deadline = now + TCP_TIMEWAIT_LEN

    def _drop_connection(self, reason: AbortReason | None) -> None:
        """Enter CLOSED; nothing more is sent and every timer stops (``tcp_done``)."""
        self._state = EndpointState.CLOSED
        self._aborted_reason = reason
        self._ack_now = False
        self._rto_deadline = self._delack_deadline = self._close_deadline = None
