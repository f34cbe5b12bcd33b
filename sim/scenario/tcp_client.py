"""A container's TCP connect() in a story (net/ipv4/tcp_output.c ``tcp_connect()``,
net/ipv4/tcp_timer.c ``tcp_retransmit_timer()``): the clients of a story's ``connect`` steps,
run by the endpoint model (sim/net/endpoint.py) and sent through the story's world."""

from __future__ import annotations

from sim.net.endpoint import EndpointState, Role, TcpEndpoint
from sim.net.rtt import TCP_TIMEOUT_INIT
from sim.packet import TCPHDR_SYN, Packet
from sim.scenario.case import CasePacket, Race
from sim.scenario.moment import Moment, Runner


class TcpClients:
    """Containers calling ``connect()``: the host kernel's own TCP, which containers share, as
    the endpoint model runs it (:class:`sim.net.endpoint.TcpEndpoint`), one client per connect
    step of a group whose later SYNs race the first to confirmation.

    - ``tcp_connect()`` (net/ipv4/tcp_output.c) sends the SYN and arms the retransmission
      timer with ``icsk_rto``, ``TCP_TIMEOUT_INIT`` (1 s, include/net/tcp.h; RFC 6298 §2.1) on
      every profile (set by ``tcp_init_sock()``, again by el7's ``tcp_connect_init()``, and by
      4.19's and later ones through ``tcp_timeout_init()`` unless a BPF program says
      otherwise): ``inet_csk_reset_xmit_timer()`` up to 6.12, ``tcp_reset_xmit_timer()`` in 6.18;
    - a SYN that hears nothing is sent again when that timer fires (``tcp_write_timer_handler()``
      -> ``tcp_retransmit_timer()``, net/ipv4/tcp_timer.c: ``tcp_retransmit_skb()``, then the RTO
      doubled), with the same initial sequence number;
    - the SYN/ACK it gets is ACKed at once (``tcp_rcv_synsent_state_process()``, tcp_input.c).

    A SYN dropped by the host leaves no trace in the host's table: the unconfirmed entry dies
    with its packet, so the retransmitted SYN finds nothing (``resolve_normal_ct()``) and gets a
    fresh entry (``init_conntrack()``), NATed afresh (``get_unique_tuple()``). Only the first
    retransmission matters to the stories: 6.12 and 6.18 keep the RTO of a SYN_SENT socket
    while ``tp->total_rto`` <= ``sysctl_tcp_syn_linear_timeouts`` (4), so their next four
    retransmissions come 1 s apart too, and allow that many more; the endpoint doubles the RTO
    from the first."""

    def __init__(self, runner: Runner, connects: list[tuple[CasePacket, str]]) -> None:
        """``connects``: each client's first SYN (as a connect step gives it: ends, initial
        sequence number, race) with the words that introduce it."""
        self.r = runner
        self.syns = [syn for syn, _ in connects]
        self.says = [say for _, say in connects]
        self.clients = [
            TcpEndpoint(
                (p.pkt.src, p.pkt.sport),
                (p.pkt.dst, p.pkt.dport),
                Role.CLIENT,
                isn=p.pkt.seq,
                rng=runner.w.rng,
            )
            for p in self.syns
        ]
        self.start = 0.0

    def run(self) -> None:
        """Connect every client, then run their retransmission timers until each has connected
        or given up (``tcp_syn_retries``)."""
        w = self.r.w
        w.run(until=w.clock.now + self.syns[0].delay)
        self.start = w.clock.now
        first = [
            (n, pkt, self.says[n] or f"{self.syns[n].side}'s SYN")
            for n, client in enumerate(self.clients)
            for pkt in client.connect(self.start)
        ]
        self.exchange(first, race=True)
        while waiting := [c for c in self.clients if c.state is EndpointState.SYN_SENT]:
            w.run(until=min(c.next_deadline() or w.clock.now for c in waiting))
            again = []
            for n, client in enumerate(self.clients):
                if client in waiting:
                    rto = client.rto  # the timer that fired; tcp_retransmit_timer() doubles it
                    why = (
                        f"{self.syns[n].side}'s SYN again: no answer for {rto:g} s (the retransmission timer)"
                    )
                    again += [(n, pkt, why) for pkt in client.poll(w.clock.now)]
            self.exchange(again)
        for n, client in enumerate(self.clients):
            if client.state is not EndpointState.ESTABLISHED:
                took = w.clock.now - self.start
                self.r.moments.append(
                    Moment(
                        w.clock.now,
                        f"{self.syns[n].side} has no connection after {took:.3f} s",
                        failed=f"the connect failed ({client.aborted_reason or client.state.value})",
                    )
                )

    def exchange(self, sends: list[tuple[int, Packet, str]], race: bool = False) -> None:
        """Send each client's segment (client index, segment, words; with ``race`` the later
        SYNs race the first); a SYN the host drops is marked as where the story turns, and a
        SYN/ACK that comes back is handed to its client, whose ACK goes out at once."""
        packets = [
            CasePacket(self.syns[n].side, pkt, 0.0, Race.PREV if race and k else None)
            for k, (n, pkt, _) in enumerate(sends)
        ]
        acks: list[tuple[int, Packet, str]] = []
        connected = []
        for (n, pkt, _), sent in zip(sends, self.r.send(packets, [w for _, _, w in sends]), strict=True):
            if pkt.flags & TCPHDR_SYN and (sent.obs.get("fate") or "").startswith("dropped"):
                counters = " ".join(
                    sorted(k for k in sent.obs["ct_stats"] if k in ("insert_failed", "drop", "early_drop"))
                )
                moment = next(m for m in self.r.moments if m.pid == sent.pid)
                moment.failed = f"the SYN is dropped at the host ({counters or 'no counter'})"
            client = self.clients[n]
            if sent.arrived is not None and (sent.arrived.dst, sent.arrived.dport) == client.local:
                was = client.state
                side = self.syns[n].side
                acks += [
                    (n, out, f"{side}'s ACK") for out in client.receive(sent.arrived, self.r.w.clock.now)
                ]
                if was is EndpointState.SYN_SENT and client.state is EndpointState.ESTABLISHED:
                    connected.append(n)
        if acks:
            self.exchange(acks)
        for n in connected:
            self.connected(n)

    def connected(self, n: int) -> None:
        """Client ``n`` is connected: how long its connect took, and whether it waited a
        retransmission for it."""
        client, now = self.clients[n], self.r.w.clock.now
        took, again = now - self.start, client.retransmissions
        sent = f" (its SYN sent {again + 1} times)" if again else ""
        failed = (
            f"the connect took {took:.3f} s: its first SYN went unanswered, and the retransmission "
            f"timer sent it again after TCP_TIMEOUT_INIT ({TCP_TIMEOUT_INIT:g} s)"
            if again
            else ""
        )
        self.r.moments.append(
            Moment(now, f"{self.syns[n].side} is connected after {took:.3f} s{sent}", failed=failed)
        )
