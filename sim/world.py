"""The simulated world: namespaces joined by links, one clock, one seeded RNG, one trace.

Frames leave a device (``xmit``), cross a veth or the bridge, and arrive on the peer device
(``netif_receive``) after the link's delay; jitter, loss, duplication and reordering draw from
the world's RNG, so the same seed gives the same run. The topology is also kept as a networkx
graph (namespaces and devices as nodes; membership, veth links and bridge ports as edges).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from sim.clock import Clock
from sim.ipv4 import ip_local_out, ip_rcv
from sim.netfilter.xtables import HOOK_CHAIN, TableName, XtResult
from sim.netns import Device, Namespace
from sim.packet import Packet
from sim.skb import Hook, Skb
from sim.tcp import socket_name
from sim.trace import Step, Trace, TraceEvent


@dataclass(slots=True)
class NsContext:
    """The ``XtContext`` the iptables code asks for, for one namespace."""

    world: World
    ns: Namespace

    @property
    def now(self) -> float:
        return self.world.clock.now

    @property
    def local_addrs(self) -> set[str]:
        return self.ns.local_addrs

    def mac_header(self, skb: Skb) -> str:
        """``dump_mac_header()``: destination MAC, source MAC, ethertype 08:00."""
        dev = self.ns.devices.get(skb.physindev or skb.indev or "")
        if dev is None or dev.peer is None:
            return ""
        src = self.world.namespaces[dev.peer[0]].devices[dev.peer[1]].mac
        dst = self.ns.devices[skb.indev].mac if skb.indev in self.ns.devices else dev.mac
        return f"{dst}:{src}:08:00"

    def log(self, level: int, line: str) -> None:
        self.world.kernel_log(self.ns, self.world.current_pid, line)


@dataclass(slots=True)
class Capture:
    """What a capture point saw: (time, direction "in"/"out", packet, packet id)."""

    records: list[tuple[float, str, Packet, int]] = field(default_factory=list)


class World:
    """Namespaces, links, the clock, the RNG and the trace."""

    def __init__(self, seed: int = 0, trace: bool = True) -> None:
        self.clock = Clock()
        self.rng = random.Random(seed)
        self.nat_rng = random.Random(seed + 1)  # get_random_u16() for NAT port choice
        self.namespaces: dict[str, Namespace] = {}
        self.graph: nx.Graph = nx.Graph()
        self.trace = Trace(trace)
        self.captures: dict[tuple[str, str], Capture] = defaultdict(Capture)
        self._next_pid = 0
        self.current_pid = 0
        self.crossings = 0  # packets counted once per namespace they pass (bench)
        # called after a socket took a segment: the workload driver arms its timers there
        self.on_socket: Callable[[Namespace, Any], None] | None = None
        self._contexts: dict[str, NsContext] = {}

    # -- building -------------------------------------------------------------------------
    def add_namespace(self, ns: Namespace) -> Namespace:
        self.namespaces[ns.name] = ns
        self.graph.add_node(ns.name, kind="netns")
        for dev in ns.devices.values():
            self._add_dev_node(ns, dev)
        return ns

    def _add_dev_node(self, ns: Namespace, dev: Device) -> None:
        node = f"{ns.name}/{dev.name}"
        self.graph.add_node(node, kind=dev.kind.value, addr=dev.addr)
        self.graph.add_edge(ns.name, node, kind="has")
        if dev.master is not None:
            self.graph.add_edge(node, f"{ns.name}/{dev.master}", kind="port")

    def add_device(self, ns: Namespace, dev: Device) -> Device:
        ns.add_device(dev)
        self._add_dev_node(ns, dev)
        return dev

    def link(self, a: tuple[str, str], b: tuple[str, str], delay: float = 0.0) -> None:
        """A veth pair (or a wire) between device ``a`` and device ``b``."""
        da = self.namespaces[a[0]].devices[a[1]]
        db = self.namespaces[b[0]].devices[b[1]]
        da.peer, db.peer = b, a
        da.delay = db.delay = delay
        self.graph.add_edge(f"{a[0]}/{a[1]}", f"{b[0]}/{b[1]}", kind="link")

    def xt_context(self, ns: Namespace) -> NsContext:
        ctx = self._contexts.get(ns.name)
        if ctx is None:
            ctx = self._contexts[ns.name] = NsContext(self, ns)
        return ctx

    # -- trace helpers ----------------------------------------------------------------------
    def new_pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    def event(
        self,
        pid: int,
        step: Step,
        ns: Namespace,
        skb: Skb | None,
        hook: Hook | None,
        priority: int | None,
        verdict: str,
        before: Packet | None,
        *,
        after: Packet | None = None,
        why: str = "",
        data: dict[str, Any] | None = None,
        cause: int | None = None,
        dev: str | None = None,
    ) -> None:
        if not self.trace.enabled:
            return
        if dev is None and skb is not None:
            dev = skb.outdev if hook in (Hook.POST_ROUTING, Hook.LOCAL_OUT) else skb.indev
        self.trace.add(
            TraceEvent(
                self.clock.now,
                pid,
                step,
                ns.name,
                dev,
                HOOK_CHAIN[hook] if hook is not None else None,
                priority,
                verdict=verdict,
                before=before,
                after=after,
                why=why,
                data=data or {},
                cause=cause,
            )
        )

    def table_event(
        self, pid: int, ns: Namespace, skb: Skb, hook: Hook, priority: int, table: TableName, result: XtResult
    ) -> None:
        if not self.trace.enabled:
            return
        rule = f"rule {result.rulenum}" if result.rulenum else "the chain policy"
        self.trace.add(
            TraceEvent(
                self.clock.now,
                pid,
                Step.TABLE,
                ns.name,
                skb.indev or skb.outdev,
                HOOK_CHAIN[hook],
                priority,
                table.value,
                result.chain,
                result.rulenum,
                result.verdict.name,
                skb.pkt,
                why=f"{table.value} {result.chain}: {rule} decided {result.verdict.name}"
                + (f" ({result.nat.kind.value})" if result.nat else ""),
            )
        )

    def kernel_log(self, ns: Namespace, pid: int, line: str) -> None:
        ns.log.append((self.clock.now, line))
        if self.trace.enabled:
            self.trace.add(TraceEvent(self.clock.now, pid, Step.LOG, ns.name, verdict="LOG", why=line))

    # -- packets in ---------------------------------------------------------------------------
    def inject(self, ns_name: str, dev_name: str, pkt: Packet) -> int:
        """A crafted frame sent on an AF_PACKET socket: it bypasses the sender's stack."""
        pid = self.new_pid()
        ns = self.namespaces[ns_name]
        if self.trace.enabled:
            self.event(
                pid,
                Step.SEND,
                ns,
                None,
                None,
                None,
                "SEND",
                pkt,
                dev=dev_name,
                why=f"crafted packet sent from {ns_name} {dev_name}",
            )
        self.xmit(ns, dev_name, pkt, pid, pkt.dst)
        return pid

    def send(self, ns_name: str, pkt: Packet) -> int:
        """A packet the namespace's own TCP sends: ``ip_local_out``."""
        pid = self.new_pid()
        ns = self.namespaces[ns_name]
        self.crossings += 1
        if self.trace.enabled:
            self.event(pid, Step.SEND, ns, None, None, None, "SEND", pkt, why=f"{ns_name} sends")
        self.current_pid = pid
        ip_local_out(self, ns, Skb(pkt), pid)
        return pid

    def emit_local(self, ns: Namespace, pkt: Packet, cause: int, why: str) -> int:
        """A packet the kernel itself sends in answer to packet ``cause`` (a RST)."""
        pid = self.new_pid()
        self.event(cause, Step.RST, ns, None, None, None, "RST", pkt, why=why, data={"pid": pid})
        self.event(pid, Step.SEND, ns, None, None, None, "SEND", pkt, cause=cause, why=why)
        saved, self.current_pid = self.current_pid, pid
        ip_local_out(self, ns, Skb(pkt), pid)
        self.current_pid = saved
        return pid

    # -- links ----------------------------------------------------------------------------------
    def xmit(self, ns: Namespace, dev_name: str, pkt: Packet, pid: int, nexthop: str) -> None:
        """``dev_queue_xmit()``: out of a device; a bridge picks its port from the neighbour."""
        dev = ns.devices[dev_name]
        self.captures[(ns.name, dev_name)].records.append((self.clock.now, "out", pkt, pid))
        if dev.kind.value == "bridge":
            port = self._bridge_port(ns, dev_name, nexthop)
            if port is None:
                if self.trace.enabled:
                    self.event(
                        pid,
                        Step.DROP,
                        ns,
                        None,
                        None,
                        None,
                        "DROP",
                        pkt,
                        dev=dev_name,
                        why=f"neighbour {nexthop} unresolved on {dev_name} (no ARP reply)",
                    )
                return
            if self.trace.enabled:
                self.event(
                    pid,
                    Step.BRIDGE,
                    ns,
                    None,
                    None,
                    None,
                    "OUT",
                    pkt,
                    dev=port,
                    why=f"{dev_name} forwards the frame out of port {port}",
                )
            dev = ns.devices[port]
            self.captures[(ns.name, port)].records.append((self.clock.now, "out", pkt, pid))
        if dev.peer is None:
            self.event(pid, Step.DROP, ns, None, None, None, "DROP", pkt, dev=dev.name, why="no link")
            return
        if self.trace.enabled:
            self.event(
                pid,
                Step.XMIT,
                ns,
                None,
                None,
                None,
                "XMIT",
                pkt,
                dev=dev.name,
                why=f"out of {ns.name} {dev.name}",
            )
        copies = 1
        if dev.loss and self.rng.random() < dev.loss:
            self.event(
                pid, Step.DROP, ns, None, None, None, "DROP", pkt, dev=dev.name, why="lost on the link"
            )
            return
        if dev.duplicate and self.rng.random() < dev.duplicate:
            copies = 2
        for _ in range(copies):
            delay = dev.delay + (self.rng.uniform(0, dev.jitter) if dev.jitter else 0.0)
            if dev.hold is not None:
                delay += dev.hold(pkt)
            if dev.reorder and self.rng.random() < dev.reorder:
                delay += dev.delay or 0.001
            self.clock.schedule(delay, self.netif_receive, dev.peer[0], dev.peer[1], pkt, pid)

    def _bridge_port(self, ns: Namespace, bridge: str, nexthop: str) -> str | None:
        """The bridge's forwarding database, as learned from the neighbours behind its ports."""
        for dev in ns.devices.values():
            if (
                dev.master == bridge
                and dev.peer is not None
                and nexthop in self.namespaces[dev.peer[0]].local_addrs
            ):
                return dev.name
        return None

    def netif_receive(self, ns_name: str, dev_name: str, pkt: Packet, pid: int) -> None:
        """``__netif_receive_skb_core()``: a frame arrives; a bridge port passes it up."""
        ns = self.namespaces[ns_name]
        self.current_pid = pid
        self.crossings += 1
        self.captures[(ns_name, dev_name)].records.append((self.clock.now, "in", pkt, pid))
        if self.trace.enabled:
            self.event(
                pid, Step.RECV, ns, None, None, None, "RECV", pkt, dev=dev_name, why=f"arrives on {dev_name}"
            )
        dev = ns.devices[dev_name]
        skb = Skb(pkt, indev=dev_name)
        if dev.master is not None:
            # br_handle_frame(): addressed to the bridge's own MAC, so up the stack on docker0
            skb.indev, skb.physindev = dev.master, dev_name
            self.captures[(ns_name, dev.master)].records.append((self.clock.now, "in", pkt, pid))
            if self.trace.enabled:
                self.event(
                    pid,
                    Step.BRIDGE,
                    ns,
                    skb,
                    None,
                    None,
                    "UP",
                    pkt,
                    why=f"bridge {dev.master} passes the frame from port {dev_name} up to IP",
                )
        if ns.passive:
            if self.trace.enabled:
                self.event(
                    pid,
                    Step.DELIVER,
                    ns,
                    skb,
                    None,
                    None,
                    "CAPTURED",
                    pkt,
                    why=f"{ns_name} is a passive end host: captured, never answered",
                )
            return
        ip_rcv(self, ns, skb, pid)

    def deliver_to_socket(self, ns: Namespace, sk: Any, pkt: Packet, pid: int) -> None:
        """Hand a segment to an endpoint and send what it answers."""
        if self.trace.enabled:
            why = f"to {socket_name(ns.sockets, pkt)}"
            self.event(pid, Step.DELIVER, ns, None, None, None, "DELIVERED", pkt, why=why)
        for out in sk.receive(pkt, self.clock.now):
            self.send(ns.name, out)
        if self.on_socket is not None:
            self.on_socket(ns, sk)

    def run(self, until: float | None = None) -> None:
        self.clock.run(until)
