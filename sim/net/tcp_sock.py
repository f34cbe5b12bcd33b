"""The state of one TCP connection and the constants it runs by (include/linux/tcp.h's
``struct tcp_sock``, include/net/tcp.h).

:class:`TcpSock` holds the send and receive sequence spaces, the negotiated options, the
congestion and timer state; the code that changes them is split as Linux splits it:
:mod:`sim.net.tcp_output` (tcp_output.c), :mod:`sim.net.tcp_timer` (tcp_timer.c),
:mod:`sim.net.tcp_input` (tcp_input.c), and :mod:`sim.net.endpoint` (the user calls of tcp.c).
Constants carry the kernel's names (include/net/tcp.h) and Linux's sysctl defaults
(Documentation/networking/ip-sysctl.rst).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum, StrEnum

from sim.net.reno import Reno
from sim.net.rtt import RttEstimator
from sim.packet import SEQ_MASK, TCP_MAX_WSCALE

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


class TcpSock:
    """One connection's state (``struct tcp_sock``); :class:`sim.net.endpoint.TcpEndpoint`
    is the class to use."""

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

    def _drop_connection(self, reason: AbortReason | None) -> None:
        """Enter CLOSED; nothing more is sent and every timer stops (``tcp_done``)."""
        self._state = EndpointState.CLOSED
        self._aborted_reason = reason
        self._ack_now = False
        self._rto_deadline = self._delack_deadline = self._close_deadline = None
