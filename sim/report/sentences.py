"""Trace events in plain words: the one place the model's decisions become sentences."""

from __future__ import annotations

from collections.abc import Callable

from sim.include.netfilter import HOOK_CHAIN
from sim.packet import Packet
from sim.trace import ConfirmOutcome, ConntrackInfo, TraceEvent, TraceVerdict, Why

_STOPPED = {
    TraceVerdict.DROP: "dropped the packet",
    TraceVerdict.STOLEN: "stole the packet (NF_STOLEN): it goes no further here",
    TraceVerdict.QUEUE: "queued the packet (NF_QUEUE); no queue handler, so nf_queue freed it",
}


def say(e: TraceEvent) -> str:
    """What event ``e`` records, as one sentence with its numbers."""
    return _SAY[e.why](e)


def _pkt(e: TraceEvent) -> Packet:
    assert e.before is not None
    return e.before


def _tcp_reset(e: TraceEvent) -> str:
    p = _pkt(e)
    return f"tcp_v4_send_reset: RST seq {p.seq}" + (f" ack {p.ack}" if p.ack else "")


def _stopped(e: TraceEvent) -> str:
    assert e.verdict is not None
    what = _STOPPED.get(e.verdict, f"returned {e.verdict}: WARN_ON_ONCE in nf_hook_slow, the packet stops")
    assert e.hook is not None
    return f"{e.detail} at {HOOK_CHAIN[e.hook]} (priority {e.priority}) {what}"


def _conntrack(e: TraceEvent) -> str:
    ct: ConntrackInfo | None = e.ct
    assert ct is not None
    window, reason, attached = ct.window, ct.reason, ct.ct_id is not None
    if window is None and not attached:
        return f"conntrack refused the packet: {reason}"
    if not attached:
        return (
            f"INVALID: {reason or 'no log line'}. The packet goes on without a conntrack entry, "
            "so NAT will not touch it."
        )
    if window is TraceVerdict.IGNORE:
        return f"IGNORE: {reason}. The entry stays attached; state and window are left as they were."
    return "a new connection (unconfirmed entry)" if ct.created else "matches a tracked connection"


def _nat(e: TraceEvent) -> str:
    if e.nat is not None:
        r_src, r_sport, r_dst, r_dport = e.nat.reply
        kind = e.nat.kind.value
        return f"{kind} binds the connection: replies come to {r_dst}:{r_dport} from {r_src}:{r_sport}"
    if e.verdict is TraceVerdict.TRANSLATED:
        return "translated by the connection's binding"
    return "the binding does not change this direction"


def _table(e: TraceEvent) -> str:
    rule = f"rule {e.rule}" if e.rule else "the chain policy"
    return f"{e.table} {e.chain}: {rule} decided {e.verdict}" + (f" ({e.detail})" if e.detail else "")


def _no_socket(e: TraceEvent) -> str:
    p = _pkt(e)
    return (
        f"no socket for {p.dst}:{p.dport} from {p.src}:{p.sport} "
        "(__inet_lookup_established and __inet_lookup_listener found nothing)"
    )


_CONFIRMED = {
    ConfirmOutcome.INSERTED: "the new entry enters the conntrack table",
    ConfirmOutcome.CLASH_DROP: "entry {w} with the same tuple was confirmed first: the packet is dropped",
    ConfirmOutcome.CLASH_MERGED: "entry {w} won the race: nf_ct_resolve_clash() moves the packet to it",
    ConfirmOutcome.CLASH_REPLY_ONLY: "entry {w} won the race: nf_ct_resolve_clash_harder() inserts this "
    "one in the reply direction only (1 s, not listed by conntrack -L)",
    ConfirmOutcome.DYING: "the entry was killed before confirmation: not inserted",
}


def _confirm(e: TraceEvent) -> str:
    c = e.confirm
    if c is None:
        return "confirm: the new entry enters the conntrack table"
    counted = f" ({', '.join(c.counters)})" if c.counters and c.outcome is not ConfirmOutcome.INSERTED else ""
    return f"confirm: {_CONFIRMED[c.outcome].format(w=c.winner)}{counted}"


_SAY: dict[Why, Callable[[TraceEvent], str]] = {
    Why.CRAFTED: lambda e: f"crafted packet sent from {e.ns} {e.dev}",
    Why.STACK_SENDS: lambda e: f"{e.ns} sends",
    Why.TCP_RESET: _tcp_reset,
    Why.REJECT_RESET: lambda e: "REJECT --reject-with tcp-reset",
    Why.XMIT: lambda e: f"out of {e.ns} {e.dev}",
    Why.RECV: lambda e: f"arrives on {e.dev}",
    Why.BRIDGE_OUT: lambda e: f"{e.detail} forwards the frame out of port {e.dev}",
    Why.BRIDGE_UP: lambda e: f"bridge {e.dev} passes the frame from port {e.detail} up to IP",
    Why.NEIGH_UNRESOLVED: lambda e: f"neighbour {e.detail} unresolved on {e.dev} (no ARP reply)",
    Why.NO_LINK: lambda e: "no link",
    Why.LOST: lambda e: "lost on the link",
    Why.CAPTURED: lambda e: f"{e.ns} is a passive end host: captured, never answered",
    Why.DELIVERED: lambda e: f"to {e.detail}",
    Why.ROUTE_LOCAL: lambda e: (
        f"{_pkt(e).dst} is an address of {e.ns}: deliver to the local stack (ip_local_deliver)"
    ),
    Why.ROUTE_FORWARD: lambda e: f"route to {_pkt(e).dst} via {e.detail}: forward",
    Why.NO_ROUTE: lambda e: "routing: no route",
    Why.NOT_FORWARDING: lambda e: "routing: not local and ip_forward is 0",
    Why.NO_ROUTE_OUT: lambda e: f"no route to {_pkt(e).dst}",
    Why.TTL_EXCEEDED: lambda e: "TTL exceeded (the ICMP time-exceeded answer is not modelled)",
    Why.SOCKET_FOUND: lambda e: f"{e.detail} takes the segment",
    Why.NO_SOCKET: _no_socket,
    Why.NO_UDP_SOCKET: lambda e: (
        f"no UDP socket for {_pkt(e).dst}:{_pkt(e).dport}: __udp4_lib_rcv answers ICMP port unreachable"
    ),
    Why.ICMP_RCV: lambda e: f"icmp_rcv takes the ICMP type {_pkt(e).icmp_type} message",
    Why.ICMP_SEND: lambda e: f"icmp_send/icmp_reply: ICMP type {_pkt(e).icmp_type} code {_pkt(e).icmp_code}",
    Why.FIREWALL: lambda e: "a stateful firewall in front of this host drops segments of unknown connections",
    Why.BAD_CHECKSUM: lambda e: "bad TCP checksum (TCP_MIB_CSUMERRORS)",
    Why.NO_RST_FOR_RST: lambda e: "never send a reset in response to a reset",
    Why.HOOK_VERDICT: _stopped,
    Why.CONNTRACK: _conntrack,
    Why.CONFIRM: _confirm,
    Why.QUEUED: lambda e: "held in a queue before confirmation: the racing packet goes first",
    Why.REINJECTED: lambda e: "re-injected from the queue: on to confirmation",
    Why.EARLY_DROP: lambda e: f"nf_conntrack_max reached: early_drop() evicts {e.detail} unassured entries",
    Why.TABLE_FULL: lambda e: f"nf_conntrack_max reached and nothing to evict: {e.detail}",
    Why.NAT_SKIP: lambda e: "no conntrack entry (INVALID): nf_nat_inet_fn returns NF_ACCEPT untranslated",
    Why.NAT: _nat,
    Why.TABLE: _table,
    Why.LOG: lambda e: e.detail or "",
}
