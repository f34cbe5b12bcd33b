"""Reno congestion control (RFC 5681): slow start, congestion avoidance, fast retransmit and
fast recovery, and the collapse after a retransmission timeout."""

from __future__ import annotations

TCP_FASTRETRANS_THRESH = 3  # duplicate ACKs before fast retransmit, RFC 5681 §3.2


class Reno:
    """cwnd and ssthresh in bytes."""

    __slots__ = ("cwnd", "dupacks", "in_recovery", "ssthresh")

    def __init__(self, cwnd: int) -> None:
        self.cwnd = cwnd
        self.ssthresh = 1 << 31  # "arbitrarily high" (RFC 5681 §3.1)
        self.dupacks = 0
        self.in_recovery = False

    def on_new_ack(self, acked: int, mss: int) -> None:
        """New data acknowledged: leaving fast recovery deflates cwnd to ssthresh (§3.2 step
        6); else slow start adds min(acked, SMSS) (§3.1 eq. 2) and congestion avoidance about
        one SMSS per RTT (eq. 3)."""
        self.dupacks = 0
        if not acked:
            return
        if self.in_recovery:
            self.in_recovery = False
            self.cwnd = self.ssthresh
        elif self.cwnd < self.ssthresh:
            self.cwnd += min(acked, mss)
        else:
            self.cwnd += max(1, mss * mss // self.cwnd)

    def on_duplicate_ack(self, mss: int, flight: int) -> bool:
        """Fast retransmit and fast recovery (§3.2 steps 2-4); True when the head of the
        queue is to be retransmitted now."""
        self.dupacks += 1
        if self.in_recovery:
            self.cwnd += mss
            return False
        if self.dupacks == TCP_FASTRETRANS_THRESH:
            self.ssthresh = halved_flight(flight, mss)
            self.cwnd = self.ssthresh + TCP_FASTRETRANS_THRESH * mss
            self.in_recovery = True
            return True
        return False

    def on_timeout(self, first: bool, mss: int, flight: int) -> None:
        """RTO expiry: cwnd collapses to one segment (§3.1); ssthresh halves only on the first
        timeout of a series."""
        if first:
            self.ssthresh = halved_flight(flight, mss)
        self.cwnd = mss
        self.in_recovery = False
        self.dupacks = 0


def halved_flight(flight: int, mss: int) -> int:
    """ssthresh after a loss: max(FlightSize / 2, 2 * SMSS) (RFC 5681 §3.1 eq. 4)."""
    return max(flight // 2, 2 * mss)
