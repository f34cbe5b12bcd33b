"""The retransmission timer's estimate (RFC 6298), with Linux's floor and ceiling."""

from __future__ import annotations

TCP_TIMEOUT_INIT = 1.0  # initial RTO, RFC 6298 §2.1: include/net/tcp.h (1*HZ) in every profile
TCP_TIMEOUT_FALLBACK = 3.0  # RTO after a handshake without an RTT sample, RFC 6298 §5.7
TCP_RTO_MIN = 0.2  # Linux's floor; RFC 6298 §2.4 asks for 1 s
TCP_RTO_MAX = 120.0  # RFC 6298 §2.5 allows a maximum of at least 60 s
RTO_ALPHA = 1 / 8  # RFC 6298 §2.3
RTO_BETA = 1 / 4
RTO_K = 4
CLOCK_GRANULARITY = 0.001  # G in RFC 6298 §2.2: Linux's TCP clock ticks in ms


class RttEstimator:
    """SRTT, RTTVAR and the RTO they give."""

    __slots__ = ("rto", "rttvar", "srtt")

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = TCP_TIMEOUT_INIT

    def sample(self, rtt: float) -> None:
        """RFC 6298 §2.2, §2.3, with Linux's floor of 200 ms and ceiling of 120 s."""
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = (1 - RTO_BETA) * self.rttvar + RTO_BETA * abs(self.srtt - rtt)
            self.srtt = (1 - RTO_ALPHA) * self.srtt + RTO_ALPHA * rtt
        rto = self.srtt + max(CLOCK_GRANULARITY, RTO_K * self.rttvar)
        self.rto = min(max(rto, TCP_RTO_MIN), TCP_RTO_MAX)

    def back_off(self) -> None:
        """RFC 6298 §5.5: double the RTO, up to the ceiling."""
        self.rto = min(self.rto * 2, TCP_RTO_MAX)

    def fall_back(self) -> None:
        """RFC 6298 §5.7: 3 s after a handshake that had to be retransmitted (no sample)."""
        self.rto = TCP_TIMEOUT_FALLBACK
