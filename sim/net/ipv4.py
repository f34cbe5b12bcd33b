"""The IPv4 paths and their NF_HOOK call sites (net/ipv4/ip_input.c, ip_forward.c,
ip_output.c, net/netfilter/core.c).

``ip_rcv`` runs PRE_ROUTING, routes, then ``ip_local_deliver`` (LOCAL_IN -> tcp_v4_rcv) or
``ip_forward`` (FORWARD -> ``ip_output``: POST_ROUTING -> the device). ``ip_local_out`` runs
LOCAL_OUT and POST_ROUTING for packets the namespace itself sends.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from sim.net.icmp import icmp_rcv
from sim.net.netns import RouteType
from sim.net.tcp_ipv4 import inet_lookup, socket_name, tcp_v4_send_reset
from sim.net.udp import udp_rcv
from sim.netfilter.core import nf_hook_slow
from sim.packet import IpProto
from sim.skb import Hook, Skb
from sim.trace import Step, TraceVerdict, Why

if TYPE_CHECKING:
    from collections.abc import Callable

    from sim.net.netns import Namespace
    from sim.net.world import World


def nf_hook(w: World, ns: Namespace, hook: Hook, skb: Skb, okfn: Callable[[Skb], None] | None = None) -> bool:
    """``NF_HOOK()``: ``nf_hook_slow`` over the namespace's entries for ``hook``; True when the
    packet goes on. ``okfn`` is where a queued packet goes on after ``nf_reinject()``; it is
    only needed (and only built) while a race waits to hold a packet."""
    return nf_hook_slow(skb, w.hook_state(ns, hook), okfn)


def ip_rcv(w: World, ns: Namespace, skb: Skb) -> None:
    """``ip_rcv()`` -> PRE_ROUTING -> ``ip_rcv_finish()`` -> route."""
    if not nf_hook(w, ns, Hook.PRE_ROUTING, skb):
        return
    res = ns.fib_lookup(skb.pkt.dst)
    if res.type is RouteType.LOCAL:
        if w.trace.enabled:
            w.event(
                pid=skb.pid,
                step=Step.ROUTE,
                why=Why.ROUTE_LOCAL,
                ns=ns,
                verdict=TraceVerdict.LOCAL,
                before=skb.pkt,
                skb=skb,
            )
        ip_local_deliver(w, ns, skb)
    elif res.type is RouteType.UNICAST and ns.ip_forward:
        if w.trace.enabled:
            w.event(
                pid=skb.pid,
                step=Step.ROUTE,
                why=Why.ROUTE_FORWARD,
                ns=ns,
                verdict=TraceVerdict.FORWARD,
                before=skb.pkt,
                skb=skb,
                detail=res.dev,
            )
        ip_forward(w, ns, skb, res.dev or "", res.nexthop or skb.pkt.dst)
    else:
        if w.trace.enabled:
            why = Why.NO_ROUTE if res.type is RouteType.UNREACHABLE else Why.NOT_FORWARDING
            w.event(
                pid=skb.pid,
                step=Step.DROP,
                why=why,
                ns=ns,
                verdict=TraceVerdict.DROP,
                before=skb.pkt,
                skb=skb,
            )


def ip_local_deliver(w: World, ns: Namespace, skb: Skb) -> None:
    """``ip_local_deliver()`` -> LOCAL_IN -> ``ip_local_deliver_finish()``."""
    okfn = functools.partial(ip_local_deliver_finish, w, ns) if w.hold_pid is not None else None
    if not nf_hook(w, ns, Hook.LOCAL_IN, skb, okfn):
        return
    ip_local_deliver_finish(w, ns, skb)


def ip_local_deliver_finish(w: World, ns: Namespace, skb: Skb) -> None:
    """The protocol's handler (``ip_protocol_deliver_rcu``): ``tcp_v4_rcv()``, ``udp_rcv()`` or
    ``icmp_rcv()``."""
    proto = skb.pkt.proto
    if proto is IpProto.UDP:
        udp_rcv(w, ns, skb)
    elif proto is IpProto.ICMP:
        icmp_rcv(w, ns, skb)
    else:
        tcp_v4_rcv(w, ns, skb)


def tcp_v4_rcv(w: World, ns: Namespace, skb: Skb) -> None:
    """``tcp_v4_rcv()``: hand the segment to its socket, or answer ``no_tcp_socket`` with a RST."""
    pkt = skb.pkt
    sk = inet_lookup(ns.sockets, ns.listeners, pkt)
    if sk is not None:
        if w.trace.enabled:
            w.event(
                pid=skb.pid,
                step=Step.SOCKET,
                why=Why.SOCKET_FOUND,
                ns=ns,
                verdict=TraceVerdict.SOCKET,
                before=pkt,
                skb=skb,
                detail=socket_name(ns.sockets, pkt),
            )
        w.deliver_to_socket(ns, sk, pkt, skb.pid)
        return
    if w.trace.enabled:
        w.event(
            pid=skb.pid,
            step=Step.SOCKET,
            why=Why.NO_SOCKET,
            ns=ns,
            verdict=TraceVerdict.NO_SOCKET,
            before=pkt,
            skb=skb,
        )
    if not ns.reset_unknown:
        if w.trace.enabled:
            w.event(
                pid=skb.pid,
                step=Step.DROP,
                why=Why.FIREWALL,
                ns=ns,
                verdict=TraceVerdict.DROP,
                before=pkt,
                skb=skb,
            )
        return
    if pkt.bad_checksum:
        if w.trace.enabled:
            w.event(
                pid=skb.pid,
                step=Step.DROP,
                why=Why.BAD_CHECKSUM,
                ns=ns,
                verdict=TraceVerdict.DROP,
                before=pkt,
                skb=skb,
            )
        return
    rst = tcp_v4_send_reset(pkt)
    if rst is None:
        if w.trace.enabled:
            w.event(
                pid=skb.pid,
                step=Step.RST,
                why=Why.NO_RST_FOR_RST,
                ns=ns,
                verdict=TraceVerdict.NO_RST,
                before=pkt,
                skb=skb,
            )
        return
    w.emit_local(ns, rst, cause=skb.pid, why=Why.TCP_RESET)


def ip_forward(w: World, ns: Namespace, skb: Skb, dev: str, nexthop: str) -> None:
    """``ip_forward()``: TTL, FORWARD, then ``ip_output()``."""
    if skb.pkt.ttl <= 1:
        if w.trace.enabled:
            w.event(
                pid=skb.pid,
                step=Step.DROP,
                why=Why.TTL_EXCEEDED,
                ns=ns,
                verdict=TraceVerdict.DROP,
                before=skb.pkt,
                skb=skb,
            )
        return
    p = skb.pkt
    skb.pkt = p.rewritten(p.src, p.sport, p.dst, p.dport, p.ttl - 1)
    skb.outdev = dev
    if not nf_hook(w, ns, Hook.FORWARD, skb):
        return
    ip_output(w, ns, skb, nexthop)


def ip_output(w: World, ns: Namespace, skb: Skb, nexthop: str) -> None:
    """``ip_output()`` -> POST_ROUTING -> ``ip_finish_output()`` -> the device."""
    okfn = functools.partial(ip_finish_output, w, ns, nexthop) if w.hold_pid is not None else None
    if not nf_hook(w, ns, Hook.POST_ROUTING, skb, okfn):
        return
    ip_finish_output(w, ns, nexthop, skb)


def ip_finish_output(w: World, ns: Namespace, nexthop: str, skb: Skb) -> None:
    """``ip_finish_output()``: out of the device towards ``nexthop``."""
    w.xmit(ns, skb.outdev or "", skb.pkt, skb.pid, nexthop)


def ip_local_out(w: World, ns: Namespace, skb: Skb) -> None:
    """``ip_local_out()``: route, LOCAL_OUT, then ``ip_output()``."""
    res = ns.fib_lookup(skb.pkt.dst)
    if res.type is not RouteType.UNICAST:
        if w.trace.enabled:
            w.event(
                pid=skb.pid,
                step=Step.DROP,
                why=Why.NO_ROUTE_OUT,
                ns=ns,
                verdict=TraceVerdict.DROP,
                before=skb.pkt,
                skb=skb,
            )
        return
    skb.outdev = res.dev
    if not nf_hook(w, ns, Hook.LOCAL_OUT, skb):
        return
    ip_output(w, ns, skb, res.nexthop or skb.pkt.dst)
