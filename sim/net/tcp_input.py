"""Receiving (net/ipv4/tcp_input.c): a segment's processing by state (RFC 793 §3.9 SEGMENT
ARRIVES, with RFC 5961), the handshake's options, ACK processing and the receive queue."""

from __future__ import annotations

from sim.net.tcp_sock import (
    TCP_DELACK_MIN,
    TCP_FIN_TIMEOUT,
    TCP_MSS_DEFAULT,
    TCPOLEN_TSTAMP_ALIGNED,
    AbortReason,
    EndpointState,
)
from sim.net.tcp_timer import TcpTimer
from sim.packet import SEQ_MASK, TCP_MAX_WSCALE, TCPHDR_FIN, TCPHDR_SYN, Packet, after, before, rst_reply

# States whose segment text is delivered (RFC 793 §3.9, "seventh, process the segment text").
_RECEIVING_STATES = frozenset({EndpointState.ESTABLISHED, EndpointState.FIN_WAIT_1, EndpointState.FIN_WAIT_2})
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


class TcpInput(TcpTimer):
    """The receive path of :class:`sim.net.endpoint.TcpEndpoint`."""

    __slots__ = ()

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
