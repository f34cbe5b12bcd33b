"""Sending (net/ipv4/tcp_output.c): what the windows allow, the segments' headers and options,
and the SYN or SYN/ACK."""

from __future__ import annotations

from sim.net.tcp_sock import MAX_TCP_WINDOW, MS_PER_S, EndpointState, TcpSock
from sim.packet import (
    NO_OPTIONS,
    SEQ_MASK,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_PSH,
    TCPHDR_SYN,
    Packet,
    TcpOptions,
    after,
    before,
)

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


class TcpOutput(TcpSock):
    """The send path of :class:`sim.net.endpoint.TcpEndpoint`."""

    __slots__ = ()

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
