"""The IPv4 paths and their NF_HOOK call sites (net/ipv4/ip_input.c, ip_forward.c,
ip_output.c, net/netfilter/core.c).

``ip_rcv`` runs PRE_ROUTING, routes, then ``ip_local_deliver`` (LOCAL_IN -> tcp_v4_rcv) or
``ip_forward`` (FORWARD -> ``ip_output``: POST_ROUTING -> the device). ``ip_local_out`` runs
LOCAL_OUT and POST_ROUTING for packets the namespace itself sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.netfilter.hooks import NfVerdict
from sim.netfilter.xtables import HOOK_CHAIN
from sim.netns import RouteType
from sim.skb import Hook, Skb
from sim.tcp import inet_lookup, socket_name, tcp_v4_send_reset
from sim.trace import Step

if TYPE_CHECKING:
    from sim.netns import Namespace
    from sim.world import World


def nf_hook(w: World, ns: Namespace, hook: Hook, skb: Skb, pid: int) -> bool:
    """``nf_hook_slow()``: run the hook's ops in priority order; False when one drops."""
    for priority, name, op in ns.hooks.get(hook, ()):
        if op(w, ns, hook, skb, pid) == NfVerdict.DROP:
            if w.trace.enabled:
                w.event(
                    pid,
                    Step.DROP,
                    ns,
                    skb,
                    hook,
                    priority,
                    "DROP",
                    skb.pkt,
                    why=f"{name} at {HOOK_CHAIN[hook]} (priority {priority}) dropped the packet",
                )
            return False
    return True


def ip_rcv(w: World, ns: Namespace, skb: Skb, pid: int) -> None:
    """``ip_rcv()`` -> PRE_ROUTING -> ``ip_rcv_finish()`` -> route."""
    if not nf_hook(w, ns, Hook.PRE_ROUTING, skb, pid):
        return
    res = ns.fib_lookup(skb.pkt.dst)
    if res.type is RouteType.LOCAL:
        if w.trace.enabled:
            w.event(
                pid,
                Step.ROUTE,
                ns,
                skb,
                None,
                None,
                "LOCAL",
                skb.pkt,
                why=f"{skb.pkt.dst} is an address of {ns.name}: "
                "deliver to the local stack (ip_local_deliver)",
            )
        ip_local_deliver(w, ns, skb, pid)
    elif res.type is RouteType.UNICAST and ns.ip_forward:
        if w.trace.enabled:
            w.event(
                pid,
                Step.ROUTE,
                ns,
                skb,
                None,
                None,
                "FORWARD",
                skb.pkt,
                why=f"route to {skb.pkt.dst} via {res.dev}: forward",
                data={"dev": res.dev},
            )
        ip_forward(w, ns, skb, pid, res.dev or "", res.nexthop or skb.pkt.dst)
    else:
        why = "no route" if res.type is RouteType.UNREACHABLE else "not local and ip_forward is 0"
        if w.trace.enabled:
            w.event(pid, Step.DROP, ns, skb, None, None, "DROP", skb.pkt, why=f"routing: {why}")


def ip_local_deliver(w: World, ns: Namespace, skb: Skb, pid: int) -> None:
    """``ip_local_deliver()`` -> LOCAL_IN -> ``tcp_v4_rcv()``."""
    if not nf_hook(w, ns, Hook.LOCAL_IN, skb, pid):
        return
    tcp_v4_rcv(w, ns, skb, pid)


def tcp_v4_rcv(w: World, ns: Namespace, skb: Skb, pid: int) -> None:
    """``tcp_v4_rcv()``: hand the segment to its socket, or answer ``no_tcp_socket`` with a RST."""
    pkt = skb.pkt
    sk = inet_lookup(ns.sockets, ns.listeners, pkt)
    if sk is not None:
        if w.trace.enabled:
            w.event(
                pid,
                Step.SOCKET,
                ns,
                skb,
                None,
                None,
                "SOCKET",
                pkt,
                why=f"{socket_name(ns.sockets, pkt)} takes the segment",
            )
        w.deliver_to_socket(ns, sk, pkt, pid)
        return
    if w.trace.enabled:
        w.event(
            pid,
            Step.SOCKET,
            ns,
            skb,
            None,
            None,
            "NO_SOCKET",
            pkt,
            why=f"no socket for {pkt.dst}:{pkt.dport} from {pkt.src}:{pkt.sport} "
            "(__inet_lookup_established and __inet_lookup_listener found nothing)",
        )
    if not ns.reset_unknown:
        w.event(
            pid,
            Step.DROP,
            ns,
            skb,
            None,
            None,
            "DROP",
            pkt,
            why="a stateful firewall in front of this host drops segments of unknown connections",
        )
        return
    if pkt.bad_checksum:
        w.event(pid, Step.DROP, ns, skb, None, None, "DROP", pkt, why="bad TCP checksum (TCP_MIB_CSUMERRORS)")
        return
    rst = tcp_v4_send_reset(pkt)
    if rst is None:
        w.event(
            pid, Step.RST, ns, skb, None, None, "NO_RST", pkt, why="never send a reset in response to a reset"
        )
        return
    w.emit_local(
        ns,
        rst,
        cause=pid,
        why=f"tcp_v4_send_reset: RST seq {rst.seq}" + (f" ack {rst.ack}" if rst.ack else ""),
    )


def ip_forward(w: World, ns: Namespace, skb: Skb, pid: int, dev: str, nexthop: str) -> None:
    """``ip_forward()``: TTL, FORWARD, then ``ip_output()``."""
    if skb.pkt.ttl <= 1:
        w.event(
            pid,
            Step.DROP,
            ns,
            skb,
            None,
            None,
            "DROP",
            skb.pkt,
            why="TTL exceeded (the ICMP time-exceeded answer is not modelled)",
        )
        return
    p = skb.pkt
    skb.pkt = p.rewritten(p.src, p.sport, p.dst, p.dport, p.ttl - 1)
    skb.outdev = dev
    if not nf_hook(w, ns, Hook.FORWARD, skb, pid):
        return
    ip_output(w, ns, skb, pid, nexthop)


def ip_output(w: World, ns: Namespace, skb: Skb, pid: int, nexthop: str) -> None:
    """``ip_output()`` -> POST_ROUTING -> ``ip_finish_output()`` -> the device."""
    if not nf_hook(w, ns, Hook.POST_ROUTING, skb, pid):
        return
    w.xmit(ns, skb.outdev or "", skb.pkt, pid, nexthop)


def ip_local_out(w: World, ns: Namespace, skb: Skb, pid: int) -> None:
    """``ip_local_out()``: route, LOCAL_OUT, then ``ip_output()``."""
    res = ns.fib_lookup(skb.pkt.dst)
    if res.type is not RouteType.UNICAST:
        if w.trace.enabled:
            w.event(pid, Step.DROP, ns, skb, None, None, "DROP", skb.pkt, why=f"no route to {skb.pkt.dst}")
        return
    skb.outdev = res.dev
    if not nf_hook(w, ns, Hook.LOCAL_OUT, skb, pid):
        return
    ip_output(w, ns, skb, pid, res.nexthop or skb.pkt.dst)
