"""TCP endpoints for workloads (net/ipv4/tcp_input.c, tcp_output.c, tcp_timer.c).

Enough TCP to replay the seed incident's timeline: a three-way handshake with options, sending
limited by the peer's window and a Reno congestion window, cumulative and delayed ACKs,
retransmission with exponential backoff until the connection gives up, and RFC 5961's
handling of RSTs. Built like smoltcp: no I/O and no clock. Time is passed in and the segments
to send are returned; the engine carries them and calls :meth:`TcpEndpoint.poll` when
:meth:`TcpEndpoint.next_deadline` comes due. Payload bytes are not modelled, only their
lengths and sequence numbers (ints in ``[0, 2**32)``, compared with ``before``/``after``).

The code is split as Linux splits it, one class per file stacked on the connection's state:
:class:`~sim.net.tcp_sock.TcpSock` (``struct tcp_sock`` and the constants of include/net/tcp.h)
<- :class:`~sim.net.tcp_output.TcpOutput` (tcp_output.c) <- :class:`~sim.net.tcp_timer.TcpTimer`
(tcp_timer.c) <- :class:`~sim.net.tcp_input.TcpInput` (tcp_input.c) <- :class:`TcpEndpoint`,
which adds the user calls (tcp.c: connect, send, close) and the engine's entry points.

Not modelled: SACK blocks (SACK-permitted is negotiated, no blocks are sent or read), PAWS
(RFC 7323 §5), RTT measurement from timestamps (Karn's algorithm times one segment at a
time), the persist timer (our receivers read at once, so windows never close), simultaneous
open, a passive open returning to LISTEN after a RST (it ends CLOSED), challenge-ACK rate
limits (RFC 5961 §7), urgent data, and Linux's quick-ACK mode.
"""

from __future__ import annotations

from sim.net.tcp_input import TcpInput
from sim.net.tcp_sock import (
    DEFAULT_OPTIONS,
    AbortReason,
    EndpointOptions,
    EndpointState,
    Role,
)
from sim.packet import SEQ_MASK, Packet

__all__ = ["DEFAULT_OPTIONS", "AbortReason", "EndpointOptions", "EndpointState", "Role", "TcpEndpoint"]

# close() moves these to the next state and queues a FIN (RFC 793 §3.9 CLOSE call).
_CLOSE_TRANSITIONS = {
    EndpointState.ESTABLISHED: EndpointState.FIN_WAIT_1,
    EndpointState.CLOSE_WAIT: EndpointState.LAST_ACK,
}


class TcpEndpoint(TcpInput):
    """One end of one TCP connection, driven by :meth:`receive` and :meth:`poll`.

    A client starts CLOSED and :meth:`connect` sends its SYN; a server starts in LISTEN and
    accepts the first SYN it is given, adopting that SYN's source as its remote (as
    ``accept()`` does). Queue application bytes with :meth:`send`; they leave on the next
    :meth:`receive` or :meth:`poll`. The endpoint never answers a RST with a RST, and a CLOSED
    endpoint is silent: answering segments for which there is no connection is the socket
    layer's job (``tcp_v4_send_reset``).
    """

    __slots__ = ()

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
