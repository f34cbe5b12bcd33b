"""The device layer (net/core/dev.c, net/bridge/br_forward.c, br_input.c, br_fdb.c,
drivers/net/veth.c).

A frame leaves a device (``dev_queue_xmit``; a bridge picks its port from its forwarding
database), crosses the veth pair or wire after the link's delay -- jitter, loss, duplication
and reordering drawn from the world's RNG -- and arrives on the peer
(``netif_receive_skb``), where a bridge port passes it up on the bridge and the IPv4
handler takes it. Every capture point records what crosses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.net.netns import DevKind
from sim.skb import Skb
from sim.trace import Why

if TYPE_CHECKING:
    from sim.net.netns import Namespace
    from sim.net.stack import NetDev
    from sim.packet import Packet


def dev_queue_xmit(w: NetDev, ns: Namespace, dev_name: str, pkt: Packet, pid: int, nexthop: str) -> None:
    """``dev_queue_xmit()``: out of a device; a bridge picks its port from the neighbour
    (``br_dev_xmit()`` -> ``br_fdb_find_rcu()``), a veth hands the frame to its peer."""
    dev = ns.devices[dev_name]
    now = w.clock.now
    if w.capturing:
        w.captures[(ns.name, dev_name)].records.append((now, "out", pkt, pid))
    if dev.kind is DevKind.BRIDGE:
        port = br_fdb_port(w, ns, dev_name, nexthop)
        if port is None:
            if w.trace.enabled:
                w.note_dev(Why.NEIGH_UNRESOLVED, ns, dev_name, pkt, pid, detail=nexthop)
            return
        if w.trace.enabled:
            w.note_dev(Why.BRIDGE_OUT, ns, port, pkt, pid, detail=dev_name)
        dev = ns.devices[port]
        if w.capturing:
            w.captures[(ns.name, port)].records.append((now, "out", pkt, pid))
    if dev.peer is None:
        if w.trace.enabled:
            w.note_dev(Why.NO_LINK, ns, dev.name, pkt, pid)
        return
    if w.trace.enabled:
        w.note_dev(Why.XMIT, ns, dev.name, pkt, pid)
    rng = w.rng
    copies = 1
    if dev.loss and rng.random() < dev.loss:
        if w.trace.enabled:
            w.note_dev(Why.LOST, ns, dev.name, pkt, pid)
        return
    if dev.duplicate and rng.random() < dev.duplicate:
        copies = 2
    for _ in range(copies):
        delay = dev.delay + (rng.uniform(0, dev.jitter) if dev.jitter else 0.0)
        for trigger in w.triggers:
            delay += trigger.delay(ns.name, dev.name, pkt, pid)
        if dev.reorder and rng.random() < dev.reorder:
            delay += dev.delay or 0.001
        peer = dev.stations.get(nexthop, dev.peer) if dev.stations else dev.peer
        w.clock.schedule(delay, netif_receive_skb, w, peer[0], peer[1], pkt, pid)


def br_fdb_port(w: NetDev, ns: Namespace, bridge: str, nexthop: str) -> str | None:
    """The bridge's forwarding database, as learned from the neighbours behind its ports."""
    for dev in ns.devices.values():
        if dev.master == bridge and dev.peer is not None and nexthop in w.namespaces[dev.peer[0]].local_addrs:
            return dev.name
    return None


def netif_receive_skb(w: NetDev, ns_name: str, dev_name: str, pkt: Packet, pid: int) -> None:
    """``__netif_receive_skb_core()``: a frame arrives; a bridge port passes it up
    (``br_handle_frame()``); a passive end host only captures it; else up to IP."""
    ns = w.namespaces[ns_name]
    w.crossings += 1
    if w.capturing:
        w.captures[(ns_name, dev_name)].records.append((w.clock.now, "in", pkt, pid))
    if w.trace.enabled:
        w.note_dev(Why.RECV, ns, dev_name, pkt, pid)
    dev = ns.devices[dev_name]
    skb = Skb(pkt, indev=dev_name, pid=pid)
    if dev.master is not None:
        # br_handle_frame(): addressed to the bridge's own MAC, so up the stack on docker0
        skb.indev, skb.physindev = dev.master, dev_name
        if w.capturing:
            w.captures[(ns_name, dev.master)].records.append((w.clock.now, "in", pkt, pid))
        if w.trace.enabled:
            w.note(Why.BRIDGE_UP, ns, skb, detail=dev_name)
    if ns.passive:
        if w.trace.enabled:
            w.note(Why.CAPTURED, ns, skb)
        return
    w.ip_rcv(ns, skb)
