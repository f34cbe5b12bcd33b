"""Timers (net/ipv4/tcp_timer.c): retransmission timeout with backoff, and TIME-WAIT's linger
(tcp_minisocks.c's ``tcp_time_wait``). The delayed-ACK and FIN-WAIT-2 deadlines are set by the
receive path and run by :meth:`sim.net.endpoint.TcpEndpoint.poll`."""

from __future__ import annotations

from sim.net.tcp_output import TcpOutput
from sim.net.tcp_sock import TCP_TIMEWAIT_LEN, AbortReason, EndpointState
from sim.packet import SEQ_MASK, Packet


class TcpTimer(TcpOutput):
    """The timers of :class:`sim.net.endpoint.TcpEndpoint`."""

    __slots__ = ()

    def _on_retransmit_timeout(self, now: float, out: list[Packet]) -> None:
        """RTO expiry (RFC 6298 §5.4-5.6; ``tcp_retransmit_timer()``, which
        ``tcp_write_timer_handler()`` runs when the timer ``tcp_connect()`` or a send armed
        fires): give up after the configured retries (RFC 1122 §4.2.3.5), else double the RTO,
        collapse cwnd to one segment (RFC 5681 §3.1; ssthresh halves only on the first timeout)
        and go back to SND.UNA, as Linux's ``tcp_enter_loss`` marks every outstanding segment
        lost when there is no SACK."""
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
