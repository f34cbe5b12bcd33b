"""The IPv4 paths and their NF_HOOK call sites (net/ipv4/ip_input.c, ip_forward.c,
ip_output.c, net/netfilter/core.c).

``ip_rcv`` runs PRE_ROUTING, routes, then ``ip_local_deliver`` (LOCAL_IN ->
:func:`sim.net.tcp_ipv4.tcp_v4_rcv`, :func:`sim.net.udp.udp_rcv` or
:func:`sim.net.icmp.icmp_rcv`) or ``ip_forward`` (FORWARD -> ``ip_output``: POST_ROUTING
-> :func:`sim.net.dev.dev_queue_xmit`). ``ip_local_out`` runs LOCAL_OUT and POST_ROUTING for
packets the namespace itself sends. The world around them is an :class:`sim.net.stack.Ipv4Stack`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from sim.include.netfilter import (
    NF_INET_FORWARD,
    NF_INET_LOCAL_IN,
    NF_INET_LOCAL_OUT,
    NF_INET_POST_ROUTING,
    NF_INET_PRE_ROUTING,
    Hook,
)
from sim.include.nf_conntrack import IPPROTO_ICMP
from sim.net.dev import dev_queue_xmit
from sim.net.icmp import icmp_rcv
from sim.net.netns import RTN_LOCAL, RTN_UNICAST, RouteType
from sim.net.tcp_ipv4 import tcp_v4_rcv
from sim.net.udp import udp_rcv
from sim.netfilter.core import nf_hook_slow
from sim.packet import IPPROTO_UDP
from sim.skb import Skb
from sim.trace import Why

if TYPE_CHECKING:
    from collections.abc import Callable

    from sim.net.netns import Namespace
    from sim.net.stack import Ipv4Stack


def nf_hook(
    w: Ipv4Stack, ns: Namespace, hook: Hook, skb: Skb, okfn: Callable[[Skb], None] | None = None
) -> bool:
    """``NF_HOOK()``: ``nf_hook_slow`` over the namespace's entries for ``hook``; True when the
    packet goes on. A hook no function is registered on lets the packet straight through
    (``nf_hook()``: ``if (hook_head)``). ``okfn`` is where a queued packet goes on after
    ``nf_reinject()``; it is only needed (and only built) while a race waits to hold a packet."""
    if not ns.hooks.entries.get(hook):
        return True
    return nf_hook_slow(skb, w.hook_state(ns, hook), okfn)


def ip_rcv(w: Ipv4Stack, ns: Namespace, skb: Skb) -> None:
    """``ip_rcv()`` -> PRE_ROUTING -> ``ip_rcv_finish()`` -> route."""
    if not nf_hook(w, ns, NF_INET_PRE_ROUTING, skb):
        return
    res = ns.fib_lookup(skb.pkt.dst)
    if res.type is RTN_LOCAL:
        if w.trace.enabled:
            w.note(Why.ROUTE_LOCAL, ns, skb)
        ip_local_deliver(w, ns, skb)
    elif res.type is RTN_UNICAST and ns.ip_forward:
        if w.trace.enabled:
            w.note(Why.ROUTE_FORWARD, ns, skb, detail=res.dev)
        ip_forward(w, ns, skb, res.dev or "", res.nexthop or skb.pkt.dst)
    else:
        if w.trace.enabled:
            w.note(Why.NO_ROUTE if res.type is RouteType.UNREACHABLE else Why.NOT_FORWARDING, ns, skb)


def ip_local_deliver(w: Ipv4Stack, ns: Namespace, skb: Skb) -> None:
    """``ip_local_deliver()`` -> LOCAL_IN -> ``ip_local_deliver_finish()``."""
    okfn = functools.partial(ip_local_deliver_finish, w, ns) if w.hold_pid is not None else None
    if not nf_hook(w, ns, NF_INET_LOCAL_IN, skb, okfn):
        return
    ip_local_deliver_finish(w, ns, skb)


def ip_local_deliver_finish(w: Ipv4Stack, ns: Namespace, skb: Skb) -> None:
    """The protocol's handler (``ip_protocol_deliver_rcu``): ``tcp_v4_rcv()``, ``udp_rcv()`` or
    ``icmp_rcv()``."""
    proto = skb.pkt.proto
    if proto is IPPROTO_UDP:
        udp_rcv(w, ns, skb)
    elif proto == IPPROTO_ICMP:
        icmp_rcv(w, ns, skb)
    else:
        tcp_v4_rcv(w, ns, skb)


def ip_forward(w: Ipv4Stack, ns: Namespace, skb: Skb, dev: str, nexthop: str) -> None:
    """``ip_forward()``: TTL, FORWARD, then ``ip_output()``."""
    if skb.pkt.ttl <= 1:
        if w.trace.enabled:
            w.note(Why.TTL_EXCEEDED, ns, skb)
        return
    p = skb.pkt
    skb.pkt = p.rewritten(p.src, p.sport, p.dst, p.dport, p.ttl - 1)
    skb.outdev = dev
    if not nf_hook(w, ns, NF_INET_FORWARD, skb):
        return
    ip_output(w, ns, skb, nexthop)


def ip_output(w: Ipv4Stack, ns: Namespace, skb: Skb, nexthop: str) -> None:
    """``ip_output()`` -> POST_ROUTING -> ``ip_finish_output()`` -> the device."""
    okfn = functools.partial(ip_finish_output, w, ns, nexthop) if w.hold_pid is not None else None
    if not nf_hook(w, ns, NF_INET_POST_ROUTING, skb, okfn):
        return
    ip_finish_output(w, ns, nexthop, skb)


def ip_finish_output(w: Ipv4Stack, ns: Namespace, nexthop: str, skb: Skb) -> None:
    """``ip_finish_output()``: out of the device towards ``nexthop``."""
    dev_queue_xmit(w, ns, skb.outdev or "", skb.pkt, skb.pid, nexthop)


def ip_local_out(w: Ipv4Stack, ns: Namespace, skb: Skb) -> None:
    """``ip_local_out()``: route, LOCAL_OUT, then ``ip_output()``."""
    res = ns.fib_lookup(skb.pkt.dst)
    if res.type is not RTN_UNICAST:
        if w.trace.enabled:
            w.note(Why.NO_ROUTE_OUT, ns, skb)
        return
    skb.outdev = res.dev
    if not nf_hook(w, ns, NF_INET_LOCAL_OUT, skb):
        return
    ip_output(w, ns, skb, res.nexthop or skb.pkt.dst)
